"""The benchmark script runs end to end (small sizes) and reports what it measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)  # seconds normally; a stall must not hold the suite
def test_review_replay_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "review_replay", ROOT / "benchmarks" / "review_replay.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["review_replay"] = module
    spec.loader.exec_module(module)

    # Small sizes: the same code paths as the published run (runbook scenarios, push-by-push
    # replay, overhead run) in seconds, also on a loaded machine. Short client timeouts turn a
    # stalled call into a failure here instead of a suite timeout.
    cfg = tmp_path / "gatebot.yml"
    cfg.write_text("review:\n  gemini:\n    timeout_s: 30\n    attempts: 2\n")
    out = tmp_path / "bench.json"
    argv = ["--files", "8", "--base-modules", "12", "--pushes", "2", "--overhead-files", "8"]
    assert module.main([*argv, "--config", str(cfg), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    scenarios = report["runbook scenarios: a 8-file PR"]
    assert [p["calls"] for p in scenarios][2:] == [0, 0]  # rebase, re-run
    assert scenarios[1]["calls"] == 1  # re-push of one file
    # the naive before: one call per changed file, on every push
    assert scenarios[0]["files"] >= 8
    assert all(p["naive_calls"] == p["files"] == scenarios[0]["files"] for p in scenarios)
    # thinking is counted on both sides: the naive calls think as the gate's did, per call
    first = scenarios[0]
    assert first["thoughts_tokens"] > 0 and first["calls"] > 0
    per_call = round(first["thoughts_tokens"] / first["calls"])
    assert first["naive_thoughts_tokens"] == per_call * first["naive_calls"]
    assert first["naive_output_tokens"] > first["naive_thoughts_tokens"]
    assert all(p["naive_thoughts_tokens"] > 0 for p in scenarios)  # the estimate: no call made
    pushes = report["a PR replayed push by push"]
    assert len(pushes) == 2
    assert sum(p["calls"] for p in pushes) == sum(1 for p in pushes if p["new_pairs"])
    overhead = report["overhead_8_files"]
    assert overhead["first_calls"] >= 1 and overhead["rerun_calls"] == 0  # the rerun hits cache
    assert overhead["git_diff_stat_s"] > 0
    printed = capsys.readouterr().out
    assert "fewer calls" in printed and "calls vs floor" in printed
    assert "8-file PR" in printed
