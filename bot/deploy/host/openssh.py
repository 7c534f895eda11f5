"""The real host over OpenSSH's `ssh` command: the host program (bot/deploy/host/program.py) on
the stdin/stdout of one `ssh` process (login options in bot/ssh/openssh.py).

`prestart` launches `ssh` before the deploy needs it, so the key exchange, the login and the
host program's start-up run in other processes while gatebot imports its modules and reads
git; `connect` then takes that process. The audit, which runs many short commands, opens its
own asyncssh connection when (and only when) a deploy audits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AuditRequest, HostAgent
from bot.deploy.host.program import ProgramAgent, agent_command
from bot.errors import TransportError
from bot.ssh.openssh import Login, login_error, prepare_login

if TYPE_CHECKING:
    from bot.audit.report import AuditReport

#: Longest answer line read (a listing of a big tree is one line of several MB).
LINE_LIMIT = 1 << 28


class ProcessChannel:
    """The stdin/stdout of an `ssh` process as a `Channel`; its stderr goes to a file."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path

    async def readline(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.readline()

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        if self.proc.stdin.is_closing():
            raise BrokenPipeError("the ssh process is gone")
        self.proc.stdin.write(data)

    async def drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    def abort(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    async def finish(self, timeout: float) -> None:
        try:
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except (OSError, asyncio.TimeoutError):
            self.abort()
            await self.proc.wait()

    async def stderr_tail(self) -> str:
        try:
            with self.stderr_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4000))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


@dataclass
class Started:
    login: Login
    proc: asyncio.subprocess.Process
    stderr_path: Path


class OpenSshHostAgent(ProgramAgent):
    def __init__(self, started: Started, env: Mapping[str, str], base: Path) -> None:
        login, channel = started.login, ProcessChannel(started.proc, started.stderr_path)
        super().__init__(login.name, login.target, channel)
        self.started = started
        self.env, self.base = env, base
        self._audit_stack: AsyncExitStack | None = None

    async def no_greeting(self) -> TransportError:
        proc = self.started.proc
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except asyncio.TimeoutError:
            self.channel.abort()
        err = await self.channel.stderr_tail()
        refined = login_error(self.started.login, proc.returncode, err)
        if isinstance(refined, TransportError):
            return refined
        if refined is not None:
            raise refined  # a ConfigError (an unusable key): exit 2, not a transport failure
        return await super().no_greeting()

    async def audit(self, req: AuditRequest) -> AuditReport:
        # Imported here: only a deploy that audits pays for asyncssh and the audit's modules.
        from bot.audit.run import run_audit
        from bot.ssh.credentials import load_credentials
        from bot.ssh.session import open_session

        if self._audit_stack is None:
            stack = AsyncExitStack()
            creds = load_credentials(self.name, self.target, self.env, self.base)
            self.session = await stack.enter_async_context(
                open_session(self.name, self.target, creds)
            )
            self._audit_stack = stack
        return await run_audit(
            self.session,
            self.name,
            self.target,
            req.audit,
            expected_sha=req.expected_sha,
            manifest=req.manifest,
            ref=req.ref,
            repo_path=req.repo_path,
        )

    async def close(self) -> None:
        try:
            if self._audit_stack is not None:
                stack, self._audit_stack = self._audit_stack, None
                await stack.aclose()
        finally:
            if self.broken:
                self.channel.abort()
                await self.started.proc.wait()
            else:
                await super().close()


class OpenSshConnector:
    """Connections through `ssh` with the target's pinned host key and deploy key."""

    def __init__(self, env: Mapping[str, str], base: Path, ssh: str) -> None:
        self.env = env
        self.base = base  # resolves relative identity / known_hosts files
        self.ssh = ssh
        self._ready: dict[str, tuple[TargetConfig, Started]] = {}

    async def _spawn(self, name: str, target: TargetConfig) -> Started:
        login = prepare_login(name, target, self.env, self.base, self.ssh)
        assert login.directory is not None
        stderr_path = login.directory / "stderr"
        try:
            with stderr_path.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    *login.command(agent_command(target)),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err,
                    limit=LINE_LIMIT,
                    # Its own session: a Ctrl-C or a cancelled job signals gatebot, which then
                    # lets go of the lock over this connection before closing it.
                    start_new_session=True,
                )
        except OSError as exc:
            login.close()
            raise TransportError(f"{name}: cannot start {self.ssh}: {exc}") from None
        return Started(login, proc, stderr_path)

    async def prestart(self, name: str, target: TargetConfig) -> None:
        """Start connecting to `name` now; the next `connect(name, target)` takes it."""
        if name not in self._ready:
            self._ready[name] = (target, await self._spawn(name, target))

    @asynccontextmanager
    async def connect(self, name: str, target: TargetConfig) -> AsyncIterator[HostAgent]:
        ready = self._ready.pop(name, None)
        if ready is not None and ready[0] == target:
            started = ready[1]
        else:
            if ready is not None:
                await _discard(ready[1])
            started = await self._spawn(name, target)
        agent = OpenSshHostAgent(started, self.env, self.base)
        try:
            await agent.handshake(target.connect_timeout_s + 30)
            yield agent
        finally:
            try:
                await agent.close()
            finally:
                started.login.close()

    async def aclose(self) -> None:
        """Stop the connections started ahead and never taken."""
        ready, self._ready = self._ready, {}
        for _target, started in ready.values():
            await _discard(started)


async def _discard(started: Started) -> None:
    channel = ProcessChannel(started.proc, started.stderr_path)
    channel.abort()
    await started.proc.wait()
    started.login.close()
