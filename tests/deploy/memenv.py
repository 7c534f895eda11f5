"""The deploy against the in-memory host (bot/deploy/host/memory.py): a real git repository,
the real deploy flow and steps, and a host held in memory with failures injected. No sshd."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.load import parse_config
from bot.config.model import GatebotConfig
from bot.deploy import flow
from bot.deploy.host.memory import OK, CommandCall, MemoryConnector, MemoryHost
from bot.deploy.hostside.protocol import CommandAnswer
from bot.deploy.manifest import build_manifest
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport, RolloutReport
from tests.gitrepo import RepoBuilder

ROOT = "/srv/inf"


def fail_restart_when(path: str) -> Any:
    """A restart that fails in a release holding `path` (like a service that will not start)."""

    def commands(call: CommandCall) -> CommandAnswer:
        if call.kind == "restart" and call.host.fs.exists(f"{call.cwd}/{path}"):
            return CommandAnswer(1, f"{path} is there: refusing to start")
        return OK

    return commands


@dataclass
class MemEnv:
    tmp: Path
    rb: RepoBuilder
    hosts: dict[str, MemoryHost] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    out: io.StringIO = field(default_factory=io.StringIO)

    @property
    def host(self) -> MemoryHost:
        return self.hosts["inf"]

    def target_data(self, name: str = "inf", **overrides: Any) -> dict[str, Any]:
        if name not in self.hosts:
            self.hosts[name] = MemoryHost(f"/srv/{name}")
        data: dict[str, Any] = {
            "host": f"{name}.internal",
            "user": "deploy",
            "path": self.hosts[name].root,
            "identity_env": "UNUSED_IN_MEMORY",
            "known_hosts_env": "UNUSED_IN_MEMORY",
            "lock_file": "requirements.txt",
            "install": "pip install -r requirements.txt",
            "restart": "systemctl --user restart inf",
            "lock_wait_s": 0,
        }
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
            run_id=kw.pop("run_id", "mem-run"),
            audit=kw.pop("audit", True),
            connector=MemoryConnector(self.hosts),
            hooks=kw.pop("hooks", {}),
        )

    def deploy(self, ref: str = "main", **kw: Any) -> HostReport:
        return self.deploy_all(["inf"], ref, **kw).hosts[0]

    def deploy_all(
        self,
        names: list[str],
        ref: str = "main",
        *,
        ctx: flow.DeployContext | None = None,
        dry_run: bool = False,
    ) -> RolloutReport:
        manifest = build_manifest(self.rb.path, ref)
        return asyncio.run(flow.deploy(ctx or self.ctx(), names, manifest, dry_run=dry_run))

    def rollback(self, to: str | None = None, **kw: Any) -> HostReport:
        return asyncio.run(flow.rollback(self.ctx(**kw), ["inf"], to)).hosts[0]

    def unlock(self, owner: str | None, force: bool = False) -> str:
        return asyncio.run(flow.unlock(self.ctx(), "inf", owner, force))

    def events(self) -> list[str]:
        return [str(e["event"]) for e in self.host.log_events()]

    def read(self, path: str) -> str | None:
        return self.host.fs.read_text(f"{self.host.root}/current/{path}")
