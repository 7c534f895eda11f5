"""A live 'Inf' for the audit: a release laid out under a tmp dir on the loopback sshd host, a
service listening on a loopback port, and a GTW stand-in."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.audit.report import AuditReport
from bot.audit.run import audit_target
from bot.config.audit import AuditConfig
from bot.config.deploy import TargetConfig
from tests.audit.hostlayout import lay_out_release
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

APP_FILES: dict[str, str | bytes] = {
    "requirements.txt": "# nothing pinned: the venv sees the system site-packages\n",
    "app/__init__.py": "",
    "app/adapter.py": "import json\nimport zmq\n\nVERSION = 1\n",
    "app/broken.py": "import gatebot_module_that_does_not_exist  # noqa\n",
    "bin/run.sh": "#!/bin/sh\nexec python3 -m app.adapter\n",
    "logs/.keep": "",
}


class Listener:
    """A 'service' on a loopback port: the kernel completes connects while it listens."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@dataclass
class Inf:
    server: SshServer
    root: Path
    repo: RepoBuilder
    sha: str
    release_id: str
    service: Listener
    gtw: GtwServer
    target_overrides: dict[str, Any] = field(default_factory=dict)
    audit_data: dict[str, Any] = field(default_factory=dict)

    def target(self, **overrides: Any) -> TargetConfig:
        # The interpreter itself, not a pyenv shim: shims cost ~100 ms per remote command.
        data = {"shared": ["logs"], "python": sys.executable, **self.target_overrides, **overrides}
        return self.server.target(self.root, **data)

    def audit_config(self, **overrides: Any) -> AuditConfig:
        data: dict[str, Any] = {
            "min_python": "3.10",
            "min_free_disk_mb": 1,
            "binaries": ["sh"],
            "imports": ["app.adapter"],
            "service": {"port": self.service.port},
            "gtw": {
                "endpoint": self.gtw.endpoint,
                "budget_ms": 50,
                "timeout_ms": 400,
                "retries": 2,
                "pings": 5,
            },
            "layer_timeout_s": 10,
        }
        data.update(self.audit_data)
        data.update(overrides)
        return AuditConfig.model_validate(data)

    def audit(
        self,
        *,
        target: TargetConfig | None = None,
        expected_sha: str | None = "__default__",
        **audit_overrides: Any,
    ) -> AuditReport:
        sha = self.sha if expected_sha == "__default__" else expected_sha
        return asyncio.run(
            audit_target(
                "inf",
                target or self.target(),
                self.audit_config(**audit_overrides),
                self.repo.path,
                sha,
                {},
                self.root,
            )
        )


@pytest.fixture
def inf(sshd: SshServer, gtw: GtwServer, tmp_path: Path) -> Iterator[Inf]:
    repo = RepoBuilder(tmp_path / "repo")
    sha = repo.commit(APP_FILES, modes={"bin/run.sh": 0o100755}, message="v1")
    root = tmp_path / "inf"
    rid = lay_out_release(root, repo.path, sha, shared=("logs",))
    service = Listener()
    try:
        yield Inf(sshd, root, repo, sha, rid, service, gtw)
    finally:
        service.close()


def statuses(report: AuditReport) -> dict[str, str]:
    return {layer.id: layer.status for layer in report.layers}


def only_failure(report: AuditReport) -> str:
    failed = [layer.id for layer in report.layers if layer.status == "fail"]
    details = {layer.id: layer.detail for layer in report.layers if layer.status == "fail"}
    assert len(failed) == 1, f"expected exactly one failed layer, got {details}"
    return failed[0]
