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


def _gatebot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env, timeout=120
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
        env=env,
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
        "--report", str(tmp_path / "audit.json"),
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "audit of inf failed: gtw" in res.stderr
    assert json.loads((tmp_path / "audit.json").read_text())["passed"] is False


def test_cli_unreachable_host_exits_1_with_report(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml", port=free_port())
    res = _gatebot(
        "audit", "--target", "inf", "--config", str(cfg), "--report", str(tmp_path / "a.json")
    )
    assert res.returncode == 1
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["layers"][0]["status"] == "fail"
    assert {layer["status"] for layer in report["layers"][1:]} == {"skip"}


def test_cli_config_errors_exit_2(inf: Inf, tmp_path: Path) -> None:
    cfg = _config(inf, tmp_path / "gatebot.yml")
    res = _gatebot("audit", "--target", "nope", "--config", str(cfg))
    assert res.returncode == 2 and "nope" in res.stderr and "inf" in res.stderr
    bad = tmp_path / "bad.yml"
    data = yaml.safe_load(cfg.read_text())
    data["audit"]["timeouts"] = {"gtx": 3}
    bad.write_text(yaml.safe_dump(data))
    res = _gatebot("audit", "--target", "inf", "--config", str(bad))
    assert res.returncode == 2 and "audit.timeouts" in res.stderr and "gtx" in res.stderr
    data = yaml.safe_load(cfg.read_text())
    data["deploy"]["targets"]["inf"]["identity_file"] = str(tmp_path / "missing_key")
    bad.write_text(yaml.safe_dump(data))
    res = _gatebot("audit", "--target", "inf", "--config", str(bad))
    assert res.returncode == 2 and "missing_key" in res.stderr
