"""The audit inside a real deploy (bot.deploy.flow) against the loopback sshd and GTW stand-in:
a release that fails its audit is rolled back by itself, and later rollbacks never pick it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config.load import parse_config
from bot.deploy import flow
from bot.deploy.manifest import build_manifest
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport
from tests.audit.conftest import APP_FILES, Listener
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder


class Site:
    def __init__(self, sshd: SshServer, gtw: GtwServer, tmp: Path, service: Listener) -> None:
        self.sshd, self.gtw, self.tmp, self.service = sshd, gtw, tmp, service
        self.repo = RepoBuilder(tmp / "repo")
        self.root = tmp / "host" / "inf"

    def ctx(self) -> flow.DeployContext:
        target = self.sshd.target(self.root).model_dump(exclude_none=True)
        target.update(
            python=sys.executable,
            venv_args="--system-site-packages --without-pip",
            install="true",
            shared=["logs"],
        )
        config = parse_config(
            {
                "deploy": {"targets": {"inf": target}},
                "audit": {
                    "min_free_disk_mb": 1,
                    "imports": ["app.adapter"],
                    "service": {"port": self.service.port},
                    "gtw": {"endpoint": self.gtw.endpoint, "timeout_ms": 500, "retries": 2},
                    "layer_timeout_s": 15,
                },
            }
        )
        return flow.DeployContext(
            config=config,
            env={},
            base=self.tmp,
            reporter=Reporter(plain=True, stream=io.StringIO()),
            repo_path=self.repo.path,
            run_id="audit-test",
            audit=True,
        )

    def deploy(self, sha: str) -> HostReport:
        manifest = build_manifest(self.repo.path, sha)
        return asyncio.run(flow.deploy(self.ctx(), ["inf"], manifest)).hosts[0]

    def rollback(self) -> HostReport:
        return asyncio.run(flow.rollback(self.ctx(), ["inf"], None)).hosts[0]

    def live(self) -> str:
        return os.readlink(self.root / "current").split("/")[-1]

    def events(self) -> list[dict[str, Any]]:
        path = self.root / ".gatebot" / "deploy.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def site(sshd: SshServer, gtw: GtwServer, tmp_path: Path) -> Any:
    service = Listener()
    try:
        yield Site(sshd, gtw, tmp_path, service)
    finally:
        service.close()


def _layer(report: dict[str, Any] | None, layer_id: str) -> dict[str, Any]:
    assert report is not None
    return next(layer for layer in report["layers"] if layer["id"] == layer_id)


@pytest.mark.slow
def test_failed_audit_rolls_back_and_later_rollbacks_skip_the_bad_release(site: Site) -> None:
    v1 = site.repo.commit(APP_FILES, message="v1")
    first = site.deploy(v1)
    assert first.ok, first.error
    assert first.audit is not None and first.audit["passed"], first.audit
    good = site.live()

    # v2 imports a module that does not exist: the imports layer fails after the switch.
    v2 = site.repo.commit({"app/adapter.py": "import gatebot_missing_module\n"}, message="v2")
    second = site.deploy(v2)
    assert not second.ok
    assert second.status == "auto-rolled-back"
    assert site.live() == good  # the previous release is live again
    assert second.audit is not None and not second.audit["passed"]
    assert _layer(second.audit, "imports")["status"] == "fail"
    assert "gatebot_missing_module" in _layer(second.audit, "imports")["detail"]
    assert second.rollback_audit is not None and second.rollback_audit["passed"]
    assert second.rollback_audit["release"] == good
    bad = second.release
    assert bad is not None and bad != good
    assert any(e["event"] == "bad" and e["release"] == bad for e in site.events())
    assert second.error is not None and good in second.error

    # A good v3 goes live; a rollback from it returns to v1's release, never the bad v2.
    v3 = site.repo.commit({"app/adapter.py": "import json\n\nVERSION = 3\n"}, message="v3")
    third = site.deploy(v3)
    assert third.ok, third.error
    assert site.live() not in (good, bad)
    back = site.rollback()
    assert back.ok, back.error
    assert site.live() == good
    assert back.audit is not None and back.audit["passed"]


@pytest.mark.slow
def test_gtw_down_after_deploy_rolls_back_and_reports_both_audits(site: Site) -> None:
    v1 = site.repo.commit(APP_FILES, message="v1")
    assert site.deploy(v1).ok
    good = site.live()
    v2 = site.repo.commit({"app/adapter.py": "VERSION = 2\n"}, message="v2")
    site.gtw.set_mode("garbage")
    report = site.deploy(v2)
    assert report.status == "auto-rolled-back"
    assert site.live() == good
    assert _layer(report.audit, "gtw")["status"] == "fail"
    # The GTW is still broken, so the rollback's own audit says so too: both are reported.
    assert report.rollback_audit is not None and not report.rollback_audit["passed"]
    assert _layer(report.rollback_audit, "gtw")["status"] == "fail"
