"""The benchmark script runs end to end (small sizes) and reports what it measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_review_replay_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "review_replay", ROOT / "benchmarks" / "review_replay.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["review_replay"] = module
    spec.loader.exec_module(module)

    out = tmp_path / "bench.json"
    assert module.main(["--files", "12", "--no-overhead", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    scenarios = report["runbook scenarios: a 50-file PR"]
    assert [p["calls"] for p in scenarios][2:] == [0, 0]  # rebase, re-run
    assert scenarios[1]["calls"] == 1  # re-push of one file
    assert all(p["naive_calls"] == 12 for p in scenarios)
    pushes = report["a PR replayed push by push"]
    assert sum(p["calls"] for p in pushes) == sum(1 for p in pushes if p["new_pairs"])
    printed = capsys.readouterr().out
    assert "fewer calls" in printed and "calls vs floor" in printed
