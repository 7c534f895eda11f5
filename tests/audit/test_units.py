"""The pure parts of the audit (report contract, probe judging, JSON subset) and the remote
runner's kill-on-timeout against the real loopback sshd."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.audit.gtw_probe import subset
from bot.audit.report import LAYER_IDS, AuditReport, LayerResult, render_markdown
from bot.audit.runtime_layers import judge_probe
from bot.config.audit import AuditConfig, GtwConfig
from bot.ssh import load_credentials, open_session
from bot.ssh.remote import RemoteTimeout, run_bounded
from tests.fakes.sshd import SshServer


def _layers(**statuses: str) -> list[LayerResult]:
    return [
        LayerResult(id=i, status=statuses.get(i, "pass"), duration_ms=1.0, detail=f"{i} | ok")  # type: ignore[arg-type]
        for i in LAYER_IDS
    ]


def _report(**statuses: str) -> AuditReport:
    layers = _layers(**statuses)
    return AuditReport(
        target="inf",
        sha="a" * 40,
        release="20260101T000000Z-aaaaaaa",
        started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        duration_s=1.5,
        passed=all(layer.status != "fail" for layer in layers),
        layers=layers,
    )


def test_report_requires_the_nine_layers_in_order() -> None:
    layers = _layers()
    with pytest.raises(ValidationError, match="exactly network"):
        AuditReport(
            target="t", started_at=datetime.now(timezone.utc), duration_s=0, passed=True,
            layers=[layers[1], layers[0], *layers[2:]],
        )  # fmt: skip
    with pytest.raises(ValidationError, match="unknown layer"):
        LayerResult(id="dns", status="pass", duration_ms=0, detail="")
    dumped = _report().model_dump(mode="json")
    assert dumped["schema_version"] == 1
    assert list(dumped) == [
        "schema_version", "target", "ref", "sha", "release", "started_at", "duration_s",
        "passed", "layers",
    ]  # fmt: skip


def test_markdown_escapes_cells_and_marks_failures() -> None:
    md = render_markdown(_report(gtw="fail", service="skip"))
    assert "FAILED" in md
    assert "| 9 | gtw | ❌ fail | 1 ms | gtw \\| ok |" in md
    assert "⏭️ skip" in md
    assert _report(gtw="fail").summary_line().startswith("audit of inf failed: gtw")


def test_subset_match() -> None:
    assert subset({"type": "pong"}, {"type": "pong", "ts": 1})
    assert subset({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}})
    assert not subset({"type": "pong"}, {"type": "error"})
    assert not subset({"type": "pong"}, ["pong"])
    assert subset([1, 2], [1, 2]) and not subset([1], [1, 2])
    assert subset(None, None)


def _gtw(**kw: object) -> GtwConfig:
    return GtwConfig.model_validate({"endpoint": "tcp://127.0.0.1:5555", **kw})


def test_judge_probe_budgets() -> None:
    ok = {"ok": True, "replies": 5, "p50_ms": 10.0, "max_ms": 20.0, "retries": 0}
    assert judge_probe(ok, _gtw(budget_ms=50)).status == "pass"
    slow = judge_probe({**ok, "p50_ms": 60.0, "max_ms": 70.0}, _gtw(budget_ms=50))
    assert slow.status == "fail" and "budget_ms 50" in slow.detail
    spike = judge_probe({**ok, "max_ms": 151.0}, _gtw(budget_ms=50))
    assert spike.status == "fail" and "150 ms" in spike.detail  # default max: 3x budget
    assert judge_probe({**ok, "max_ms": 151.0}, _gtw(budget_ms=50, max_ms=200)).status == "pass"
    dead = judge_probe({"ok": False, "connected": False, "error": "no reply"}, _gtw())
    assert dead.status == "fail" and "is the GTW up" in dead.detail


def test_config_rejects_unknown_layer_timeouts() -> None:
    with pytest.raises(ValidationError, match="unknown layer"):
        AuditConfig.model_validate({"timeouts": {"gateway": 3}})
    cfg = AuditConfig.model_validate({"timeouts": {"gtw": 3}, "layer_timeout_s": 9})
    assert cfg.timeout_of("gtw") == 3 and cfg.timeout_of("host") == 9


def test_run_bounded_kills_the_remote_process_group(sshd: SshServer, tmp_path: Path) -> None:
    target = sshd.target(tmp_path)
    creds = load_credentials("inf", target, {}, tmp_path)
    # A unique sleep length marks our processes; the child in the background must die too.
    mark = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 997}"

    async def go() -> RemoteTimeout:
        async with open_session("inf", target, creds) as session:
            start = time.monotonic()
            with pytest.raises(RemoteTimeout) as info:
                await run_bounded(
                    session, f"sh -c 'sleep {mark} & sleep {mark}; wait'", timeout=1.0
                )
            assert time.monotonic() - start < 6
            res = await run_bounded(session, "cat", input="echoed", timeout=10)
            assert res.ok and res.stdout == "echoed"
            return info.value

    err = asyncio.run(go())
    assert err.killed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        if f"sleep {mark}" not in ps:
            break
        time.sleep(0.1)
    assert f"sleep {mark}" not in ps
