"""Deploy tests: a real pygit2 repository, the loopback OpenSSH sshd, and a target path in tmp.

The "remote host" is this machine, so tests look at the target path directly to assert what the
deploy really left there.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.config.load import parse_config
from bot.config.model import GatebotConfig
from bot.deploy import flow
from bot.deploy.manifest import build_manifest
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport, RolloutReport
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

FAST_VENV = "--system-site-packages --without-pip"


@dataclass
class DeployEnv:
    sshd: SshServer
    tmp: Path
    rb: RepoBuilder
    root: Path
    installs: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    out: io.StringIO = field(default_factory=io.StringIO)

    def target_data(self, **overrides: Any) -> dict[str, Any]:
        data = self.sshd.target(self.root).model_dump(exclude_none=True)
        data.update(
            python=sys.executable,
            venv_args=FAST_VENV,
            lock_file="requirements.txt",
            # Proves the install ran inside the venv and counts how often it ran.
            install=f'echo "$VIRTUAL_ENV" >> {self.installs}',
            lock_wait_s=0,
        )
        data.update(self.overrides)
        data.update(overrides)
        return data

    def config(
        self,
        targets: Mapping[str, dict[str, Any]] | None = None,
        *,
        audit: dict[str, Any] | None = None,
        **deploy: Any,
    ) -> GatebotConfig:
        data: dict[str, Any] = {
            "deploy": {"targets": dict(targets or {"inf": self.target_data()}), **deploy}
        }
        if audit is not None:
            data["audit"] = audit
        return parse_config(data)

    def ctx(self, config: GatebotConfig | None = None, **kw: Any) -> flow.DeployContext:
        self.out = io.StringIO()
        return flow.DeployContext(
            config=config or self.config(),
            env=kw.pop("env", {}),
            base=self.tmp,
            reporter=Reporter(plain=True, stream=self.out),
            repo_path=self.rb.path,
            cache_dir=kw.pop("cache_dir", None),
            run_id=kw.pop("run_id", "test-run"),
            audit=kw.pop("audit", False),
        )

    def deploy(self, ref: str = "main", *, ctx: flow.DeployContext | None = None) -> HostReport:
        report = self.deploy_all(["inf"], ref, ctx=ctx)
        return report.hosts[0]

    def deploy_all(
        self, names: list[str], ref: str = "main", *, ctx: flow.DeployContext | None = None
    ) -> RolloutReport:
        manifest = build_manifest(self.rb.path, ref)
        return asyncio.run(flow.deploy(ctx or self.ctx(), names, manifest))

    def rollback(
        self, to: str | None = None, *, ctx: flow.DeployContext | None = None
    ) -> HostReport:
        return asyncio.run(flow.rollback(ctx or self.ctx(), ["inf"], to)).hosts[0]

    # What is on the "host" -------------------------------------------------------------

    @property
    def current(self) -> Path:
        return self.root / "current"

    def live(self) -> str:
        return os.readlink(self.current).split("/")[-1]

    def releases(self) -> list[str]:
        """Release directories on the host, without the next release's seed prepared ahead
        (`releases/.next-<live>`, see `deploy.<target>.prepare_next`)."""
        return sorted(p.name for p in (self.root / "releases").iterdir() if p.name[0] != ".")

    def wait_prepared(self, expected: list[str], timeout: float = 20.0) -> None:
        """Wait until the seeds prepared in the background (`releases/.next-*`) are exactly
        `expected` and none is still being prepared; fail with what is there after `timeout`.
        The preparing process is detached, so a test cannot join it: it polls."""
        import time

        deadline = time.monotonic() + timeout
        if not expected:
            time.sleep(0.3)  # room for a preparation that should not start
        while True:
            names = sorted(p.name for p in (self.root / "releases").glob(".next-*"))
            if names == sorted(expected):
                return
            assert time.monotonic() < deadline, f"prepared seeds after {timeout}s: {names}"
            time.sleep(0.02)

    def wait_deleted(self, timeout: float = 20.0) -> None:
        """Wait until what retention set aside (`.gatebot-gone-*` in releases/ and venvs/)
        has been deleted by its detached process; fail with what is left after `timeout`."""
        import time

        from bot.deploy.hostside.protocol import TRASH_PREFIX

        deadline = time.monotonic() + timeout
        while True:
            left = sorted(
                p.name
                for d in ("releases", "venvs")
                if (self.root / d).is_dir()
                for p in (self.root / d).iterdir()
                if p.name.startswith(TRASH_PREFIX)
            )
            if not left:
                return
            assert time.monotonic() < deadline, f"not deleted after {timeout}s: {left}"
            time.sleep(0.02)

    def install_count(self) -> int:
        return len(self.installs.read_text().splitlines()) if self.installs.exists() else 0

    def log_events(self) -> list[dict[str, Any]]:
        import json

        path = self.root / ".gatebot" / "deploy.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def denv(sshd: SshServer, tmp_path: Path) -> DeployEnv:
    rb = RepoBuilder(tmp_path / "repo")
    return DeployEnv(sshd, tmp_path, rb, tmp_path / "host" / "inf", tmp_path / "installs.log")


# The host program kept warm (tests/deploy/test_warm*.py) ----------------------------------


def write_counting_python(path: Path, count: Path) -> None:
    """An interpreter wrapper that counts in `count` how often a host program starts."""
    path.write_text(
        "#!/bin/sh\n"
        'for arg; do last="$arg"; done\n'  # the host program's last argument is `serve`
        f'[ "$last" = serve ] && echo start >> {count}\n'
        f'exec {sys.executable} "$@"\n'
    )
    path.chmod(0o755)


@pytest.fixture
def counted(denv: DeployEnv) -> Path:
    """The target's interpreter counts how often a host program starts; things linger 30 s."""
    count = denv.tmp / "starts.txt"
    write_counting_python(denv.tmp / "python", count)
    denv.overrides.update(python=str(denv.tmp / "python"), ssh_persist_s=30)
    return count


def starts(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def warm_record(denv: DeployEnv) -> Path:
    """The record of the copy lingering for the target as `denv` configures it now."""
    from bot.config.deploy import TargetConfig
    from bot.deploy.host import warm
    from bot.ssh.openssh import LoginSpec, prepare_login, ssh_binary

    target = TargetConfig.model_validate(denv.target_data())
    ssh = ssh_binary()
    assert ssh is not None
    login = prepare_login("inf", LoginSpec.of(target), {}, denv.tmp, ssh)
    try:
        record = warm.record_for(login, target.python)
    finally:
        login.close()
    assert record is not None
    return record
