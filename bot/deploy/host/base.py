"""The host seam: every side effect a deploy has on a target host goes through `HostAgent`.

One method per operation of the host program (bot/deploy/hostside/protocol.py defines the
requests and answers), plus the 9-layer audit over the same connection. Two implementations:

- `SshHostAgent` (bot/deploy/host/ssh.py): the host program over one SSH channel;
- `MemoryHostAgent` (bot/deploy/host/memory.py): a host held in memory (release tree, lock,
  `current`, venvs, deploy log) with failures you can inject, for deciding deploy behaviour
  in milliseconds without sshd.

A `Connector` opens a connection to a named target and yields its agent; the deploy reconnects
through it (a cut after the switch, a lock to let go over a fresh link).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.deploy.hostside.protocol import (
    Append,
    BuildVenv,
    Command,
    CommandAnswer,
    Done,
    EnvWritten,
    Extract,
    Extracted,
    Hash,
    HashAnswer,
    Health,
    Inspect,
    InspectAnswer,
    Linger,
    Lingering,
    Link,
    LockAcquire,
    LockAcquired,
    LockRelease,
    LockReleased,
    PrepareNext,
    Remove,
    Seed,
    Seeded,
    ServiceStarted,
    ServiceStopped,
    Shell,
    Started,
    StartService,
    StartVenv,
    StopService,
    Switch,
    Verified,
    VerifyHash,
    WaitHealthy,
    WriteEnv,
    WriteFile,
)

#: Receives the lines of output a long request streams as it runs.
OnOutput = Callable[[str], None]

if TYPE_CHECKING:
    from bot.audit.report import AuditReport
    from bot.config.audit import AuditConfig
    from bot.config.deploy import TargetConfig
    from bot.deploy.manifest import Manifest


class AgentError(Exception):
    """The host ran the request and it failed there (the message is the host's)."""


@dataclass(frozen=True)
class AuditRequest:
    """The audit of the live release right after a switch (bot/audit/run.py)."""

    audit: AuditConfig
    expected_sha: str | None
    manifest: Manifest | None
    ref: str | None
    repo_path: Path | None


class HostAgent(ABC):
    """One connection to one target host. Failures: AgentError when the host ran the request
    and it failed there; TransportError (bot/errors.py) when the link or the host program
    broke (a cut connection, a garbage answer, a timeout)."""

    name: str
    target: TargetConfig
    python_version: str = ""
    #: What the connection met on its way that the report should say (a connector sets it).
    connect_notes: tuple[str, ...] = ()

    @abstractmethod
    async def inspect(self, req: Inspect) -> InspectAnswer: ...

    @abstractmethod
    async def lock_acquire(self, req: LockAcquire) -> LockAcquired: ...

    @abstractmethod
    async def lock_release(self, req: LockRelease) -> LockReleased: ...

    @abstractmethod
    async def hash(self, req: Hash) -> HashAnswer: ...

    @abstractmethod
    async def verify_hash(self, req: VerifyHash) -> Verified: ...

    @abstractmethod
    async def seed(self, req: Seed) -> Seeded: ...

    @abstractmethod
    async def prepare_next(self, req: PrepareNext) -> Started: ...

    @abstractmethod
    async def link(self, req: Link) -> Done: ...

    @abstractmethod
    async def start_venv(self, req: StartVenv) -> Started: ...

    @abstractmethod
    async def build_venv(self, req: BuildVenv) -> CommandAnswer: ...

    @abstractmethod
    async def write_file(self, req: WriteFile) -> Done: ...

    @abstractmethod
    async def append(self, req: Append) -> Done: ...

    @abstractmethod
    async def switch(self, req: Switch) -> Done: ...

    @abstractmethod
    async def shell(self, req: Shell) -> CommandAnswer: ...

    @abstractmethod
    async def remove(self, req: Remove) -> Done: ...

    @abstractmethod
    async def extract(
        self, req: Extract, chunks: Iterable[bytes], sent: Callable[[int], None]
    ) -> Extracted:
        """Unpack the upload stream `chunks` (bot/deploy/stream.py) into `req.root`; `sent(n)`
        is called as each piece leaves."""

    @abstractmethod
    async def command(self, req: Command, on_output: OnOutput | None = None) -> CommandAnswer:
        """Run a hook's command; its output lines go to `on_output` as they come."""

    @abstractmethod
    async def write_env(self, req: WriteEnv) -> EnvWritten: ...

    @abstractmethod
    async def start_service(self, req: StartService) -> ServiceStarted: ...

    @abstractmethod
    async def wait_healthy(self, req: WaitHealthy, on_output: OnOutput | None = None) -> Health: ...

    @abstractmethod
    async def stop_service(self, req: StopService) -> ServiceStopped: ...

    @abstractmethod
    async def linger(self, req: Linger) -> Lingering:
        """Keep a copy of the host program up for the next command (bot/deploy/host/warm.py)."""

    @abstractmethod
    async def audit(self, req: AuditRequest) -> AuditReport:
        """The 9-layer audit of the target over this connection; never raises for a failing
        layer (the report says what failed)."""

    @abstractmethod
    async def close(self) -> None: ...


class Connector(Protocol):
    """Opens connections: `async with connector.connect(name, target) as host: ...`."""

    def connect(
        self, name: str, target: TargetConfig
    ) -> AbstractAsyncContextManager[HostAgent]: ...
