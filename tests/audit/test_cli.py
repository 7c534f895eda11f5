"""`gatebot audit` as a user runs it: a config file, exit codes, JSON + markdown + job summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bot.audit.report import LAYER_IDS
from tests.audit.conftest import Inf
from tests.fakes.sshd import free_port


def _config(inf: Inf, path: Path, **target: Any) -> Path:
    data = {
        "deploy": {
            "targets": {
                "inf": inf.target(**target).model_dump(exclude_none=True),
            }
        },
        "audit": inf.audit_config().model_dump(exclude_none=True),
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _gatebot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # cwd: the default run history (.gatebot-cache) lands in the test's tmp dir, not the checkout.
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_pass_writes_report_markdown_and_summary(inf: Inf, tmp_path: Path) -> None:
    import os

    cfg = _config(inf, tmp_path / "gatebot.yml")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    res = _gatebot(
        "audit", "--target", "inf", "--config", str(cfg), "--repo", str(inf.repo.path),
        "--sha", "main", "--report", str(tmp_path / "out" / "audit.json"),
        "--markdown", str(tmp_path / "out" / "audit.md"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert [layer["id"] for layer in report["layers"]] == list(LAYER_IDS)
    assert report["passed"] is True and report["sha"] == inf.sha and report["ref"] == "main"
    for key in ("schema_version", "target", "release", "started_at", "duration_s"):
        assert key in report
    for layer in report["layers"]:
        assert set(layer) >= {"status", "duration_ms", "detail"}
    md = (tmp_path / "out" / "audit.md").read_text()
    assert "| 9 | gtw | ✅ pass |" in md
    assert summary.read_text().startswith("earlier step\n") and "Audit of `inf` passed" in (
        summary.read_text()
    )
    # Nothing secret leaks into the outputs.
    key_text = inf.server.client_key.read_text()
    assert "PRIVATE KEY" not in res.stdout + res.stderr + md
    assert key_text not in json.dumps(report)


def test_cli_failed_layer_exits_1(inf: Inf, tmp_path: Path) -> None:
    inf.gtw.set_mode("stopped")
    cfg = _config(inf, tmp_path / "gatebot.yml")
    res = _gatebot(
        "audit", "--target", "inf", "--config", str(cfg), "--repo", str(inf.repo.path),
        "--report", str(tmp_path / "audit.json"), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "audit of inf failed: gtw" in res.stderr
    assert json.loads((tmp_path / "audit.json").read_text())["passed"] is False


def test_cli_unreachable_host_exits_1_with_report(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml", port=free_port())
    args = ["--target", "inf", "--config", str(cfg), "--report", str(tmp_path / "a.json")]
    res = _gatebot("audit", *args, cwd=tmp_path)
    assert res.returncode == 1
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["layers"][0]["status"] == "fail"
    assert {layer["status"] for layer in report["layers"][1:]} == {"skip"}


def test_cli_config_errors_exit_2(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml")
    res = _gatebot("audit", "--target", "nope", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2 and "nope" in res.stderr and "inf" in res.stderr
    bad = tmp_path / "bad.yml"
    data = yaml.safe_load(cfg.read_text())
    data["audit"]["timeouts"] = {"gtx": 3}
    bad.write_text(yaml.safe_dump(data))
    res = _gatebot("audit", "--target", "inf", "--config", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and "audit.timeouts" in res.stderr and "gtx" in res.stderr
    data = yaml.safe_load(cfg.read_text())
    data["deploy"]["targets"]["inf"]["identity_file"] = str(tmp_path / "missing_key")
    bad.write_text(yaml.safe_dump(data))
    res = _gatebot("audit", "--target", "inf", "--config", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and "missing_key" in res.stderr


def _env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_cli_records_the_audit_in_the_history(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml")
    cache = tmp_path / "cache"
    args = ["--target", "inf", "--config", str(cfg), "--repo", str(inf.repo.path)]
    res = _gatebot(
        "audit", *args, "--sha", "main", "--report", str(tmp_path / "audit.json"),
        "--cache-dir", str(cache), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    gtw = json.loads((tmp_path / "audit.json").read_text())["layers"][-1]
    (line,) = (cache / "history.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["kind"] == "audit" and record["target"] == "inf" and record["ok"] is True
    assert (record["sha"], record["ref"], record["exit_code"]) == (inf.sha, "main", 0)
    assert record["release"] == inf.release_id and record["error"] is None
    # The figures the gtw layer measured, not numbers made up on the way.
    assert record["gtw_rtt_p50_ms"] == gtw["data"]["p50_ms"] > 0
    assert record["gtw_rtt_max_ms"] == gtw["data"]["max_ms"] >= record["gtw_rtt_p50_ms"]
    assert record["gtw_budget_ms"] == 50
    assert record["audit_duration_s"] == record["duration_s"] > 0

    # The same history through `gatebot metrics`, found by $GATEBOT_CACHE_DIR this time.
    shown = _gatebot(
        "metrics", "--format", "json", cwd=tmp_path, env=_env(GATEBOT_CACHE_DIR=str(cache))
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    (run,) = data["runs"]
    assert (run["kind"], run["outcome"]) == ("audit", "ok")
    assert run["gtw_rtt_p50_ms"] == record["gtw_rtt_p50_ms"]
    assert run["gtw_rtt_max_ms"] == record["gtw_rtt_max_ms"]
    assert data["summary"]["deploy"]["audits"] == 1
    assert data["summary"]["deploy"]["gtw_rtt_p50_ms"] == record["gtw_rtt_p50_ms"]
    assert data["alerts"] == []


def test_cli_failed_audit_is_recorded_and_alerts(inf: Inf, tmp_path: Path) -> None:
    inf.gtw.set_mode("stopped")
    cfg = _config(inf, tmp_path / "gatebot.yml")
    args = ["--target", "inf", "--config", str(cfg), "--repo", str(inf.repo.path)]
    res = _gatebot("audit", *args, cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    # No --cache-dir, no $GATEBOT_CACHE_DIR: the default .gatebot-cache in the working directory.
    record = json.loads((tmp_path / ".gatebot-cache" / "history.jsonl").read_text())
    assert (record["kind"], record["ok"], record["exit_code"]) == ("audit", False, 1)
    assert record["error"].startswith("audit of inf failed: gtw: ")
    assert record["gtw_rtt_p50_ms"] is None and record["gtw_budget_ms"] == 50
    shown = _gatebot("metrics", "--format", "json", cwd=tmp_path)
    alerts = {a["id"] for a in json.loads(shown.stdout)["alerts"]}
    assert "audit_failing" in alerts and "infrastructure_error" not in alerts


def test_cli_unwritable_history_is_a_warning(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be\n")
    res = _gatebot(
        "audit", "--target", "inf", "--config", str(cfg), "--repo", str(inf.repo.path),
        "--report", str(tmp_path / "audit.json"), cwd=tmp_path,
        env=_env(GATEBOT_CACHE_DIR=str(blocker), GITHUB_ACTIONS="true"),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "::warning::audit not recorded in the run history: " in res.stderr
    assert json.loads((tmp_path / "audit.json").read_text())["passed"] is True
