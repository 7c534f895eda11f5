"""What a deploy run needs, read once by the CLI and passed down: config, environment, how to
reach the hosts (the Connector seam), how to report, and the hooks between steps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.deploy import TargetConfig
from bot.config.model import GatebotConfig
from bot.deploy.host.base import Connector
from bot.deploy.lock import LockOwner, new_owner
from bot.deploy.progress import Reporter
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.deploy.steps.base import HostRun

#: Runs at a hook point (`before_<step>` / `after_<step>`, see bot/deploy/steps/base.py).
Hook = Callable[["HostRun"], Awaitable[None]]


@dataclass
class DeployContext:
    config: GatebotConfig
    env: Mapping[str, str]
    base: Path  # resolves relative identity/known_hosts files
    reporter: Reporter
    repo_path: Path | None = None
    cache_dir: Path | None = None  # where the run history goes (None: not recorded)
    run_id: str = ""
    audit: bool = True
    #: How hosts are reached; None: over SSH with the targets' keys (bot/deploy/host/connect.py).
    connector: Connector | None = None
    hooks: Mapping[str, Sequence[Hook]] = field(default_factory=dict)

    def target(self, name: str) -> TargetConfig:
        return target_of(self.config, name)

    def owner(self, op: str) -> LockOwner:
        return new_owner(op, self.env, self.run_id or None)

    def hosts(self) -> Connector:
        if self.connector is None:
            # Imported here: the SSH clients are loaded only by runs that reach a real host.
            from bot.deploy.host.connect import HostConnector

            self.connector = HostConnector(self.env, self.base)
        return self.connector

    async def prestart(self, names: Sequence[str]) -> None:
        """Begin connecting to `names` ahead of need (a connector that cannot does nothing)."""
        start = getattr(self.hosts(), "prestart", None)
        if start is not None:
            for name in names:
                await start(name, self.target(name))

    async def close_hosts(self) -> None:
        """Stop connections begun ahead and never used."""
        close = getattr(self.connector, "aclose", None)
        if close is not None:
            await close()


def target_of(config: GatebotConfig, name: str) -> TargetConfig:
    return config.deploy.target(name)


def resolve_targets(config: GatebotConfig, names: list[str]) -> list[str]:
    """`all` means every configured target; otherwise each name must be configured."""
    targets = config.deploy.targets
    if not targets:
        raise UsageError("no deploy targets configured (deploy.targets in .github/gatebot.yml)")
    if not names or "all" in names:
        if names and names != ["all"]:
            raise UsageError("--target all cannot be combined with other targets")
        if not names:
            raise UsageError("name a target with --target NAME (or --target all)")
        return sorted(targets)
    out: list[str] = []
    for n in names:
        target_of(config, n)
        if n not in out:
            out.append(n)
    return out
