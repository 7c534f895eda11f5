"""The in-memory host's state: its filesystem, its services, what it answers and the failures
a test injects (`MemoryHost`). The agent that answers the host operations on it, and the
connector, are in bot/deploy/host/memory.py, the module tests import the in-memory host from.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bot.deploy.host.memfs import MemFS, Symlink
from bot.deploy.host.memservices import CommandKind, MemService
from bot.deploy.hostside import protocol as p

OK = p.CommandAnswer(0, "")


@dataclass(frozen=True)
class CommandCall:
    """A command the host was asked to run: the venv's install, the restart, a hook, or a
    health-gated release's start / health command / stop."""

    kind: CommandKind
    command: str
    cwd: str  # symlinks resolved: the release directory it runs in
    env: dict[str, str]
    host: MemoryHost


@dataclass
class Fault:
    op: str  # an operation name of protocol.OPERATIONS, or "connect"
    when: Literal["before", "after"] = "before"
    kind: Literal["cut", "fail"] = "cut"  # the link dies / the host answers an error
    nth: int = 1  # on the nth call of `op` (counted over every connection)
    message: str = "injected failure"


@dataclass
class MemoryHost:
    """One target host: its filesystem under `root`, and what it answers."""

    root: str
    fs: MemFS = field(default_factory=MemFS)
    commands: Callable[[CommandCall], p.CommandAnswer] = lambda call: OK
    #: {layer id: detail} of the audit layers that fail for (release, sha); {} = all pass.
    audit_failures: Callable[[str | None, str | None], dict[str, str]] = lambda r, s: {}
    faults: list[Fault] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # operation names, in order
    python_version: str = "3.11.0"
    #: Is the started process of a release healthy (checked by wait_healthy)?
    healthy: Callable[[str], bool] = lambda release: True
    #: The processes started for releases: release -> its service (running or not).
    services: dict[str, MemService] = field(default_factory=dict)
    #: Every command run, in order (hooks included), as the host saw it.
    ran: list[CommandCall] = field(default_factory=list)

    def fail(self, op: str, **kw: object) -> Fault:
        fault = Fault(op, **kw)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def live(self) -> str | None:
        node = self.fs.get(self.path(p.CURRENT_LINK))
        return posixpath.basename(node.target) if isinstance(node, Symlink) else None

    def releases(self) -> list[str]:
        rel = self.path(p.RELEASES_DIR)
        return [n for n in self.fs.listdir(rel) if not n.startswith(".")]

    def log_events(self) -> list[dict[str, object]]:
        text = self.fs.read_text(self.path(p.DEPLOY_LOG)) or ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _fault(self, op: str, when: str) -> Fault | None:
        count = self.calls.count(op)
        for f in self.faults:
            if f.op == op and f.when == when and f.nth == count:
                return f
        return None
