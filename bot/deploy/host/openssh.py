"""The real host over OpenSSH's `ssh` command: the host program (bot/deploy/host/program.py) on
the stdin/stdout of one `ssh` process (login options and the process in bot/ssh/openssh.py).

`prestart` launches `ssh` before the deploy needs it, so the key exchange, the login and the
host program's start-up run in other processes while gatebot imports its modules and reads
git; `gatebot deploy` even starts it before validating its configuration (`adopt` then takes
the process when the validated target asks for exactly that login). `connect` uses such a
process, or starts one. The audit, which runs many short commands, opens its own asyncssh
connection when (and only when) a deploy audits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.deploy import TargetConfig
from bot.deploy.host import warm
from bot.deploy.host.base import AgentError, AuditRequest, HostAgent
from bot.deploy.host.program import ProgramAgent
from bot.deploy.host.warm import Ready
from bot.deploy.hostside.bundle import agent_command
from bot.deploy.hostside.protocol import Linger
from bot.deploy.hostside.upload import widen_pipe
from bot.errors import GatebotError, TransportError
from bot.ssh.openssh import LoginSpec, Spawned, login_error, prepare_login, spawn

if TYPE_CHECKING:
    from bot.audit.report import AuditReport

#: Said in the report when the lingering port was held by something without the key.
IMPOSTOR_NOTE = (
    "the program on the lingering host agent's port did not prove it holds this runner's key "
    "(another process took the port?): nothing was sent to it, a new host program served "
    "instead"
)
#: Longest answer line read (a listing of a big tree is one line of several MB).
LINE_LIMIT = 1 << 28


class ProcessChannel:
    """The stdin/stdout of an `ssh` process as a `Channel` (attached to the running loop)."""

    def __init__(
        self,
        spawned: Spawned,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        read_transport: asyncio.ReadTransport,
    ) -> None:
        self.spawned = spawned
        self.proc = spawned.proc
        self.reader = reader
        self.writer = writer
        self.read_transport = read_transport

    @classmethod
    async def attach(cls, spawned: Spawned) -> ProcessChannel:
        loop = asyncio.get_running_loop()
        proc = spawned.proc
        assert proc.stdout is not None and proc.stdin is not None
        # An upload goes through `ssh`'s stdin: with the default 64 KiB pipe, gatebot and ssh
        # wake each other every 64 KiB (the host program widens its own stdin the same way).
        for pipe in (proc.stdin, proc.stdout):
            widen_pipe(pipe.fileno())
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), proc.stdout
        )
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), proc.stdin
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return cls(spawned, reader, writer, read_transport)

    async def readline(self) -> bytes:
        return await self.reader.readline()

    def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise BrokenPipeError("the ssh process is gone")
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def abort(self) -> None:
        # Close our ends first, then ask `ssh` to stop (SIGTERM: it lets go of a kept
        # connection's channel cleanly; SIGKILL is for one that does not stop, see `finish`).
        self.writer.close()
        self._stop_reading()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    async def wait(self, timeout: float) -> int | None:
        """The process's exit status, waiting up to `timeout` (None: still running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return self.proc.returncode

    async def finish(self, timeout: float) -> None:
        with contextlib.suppress(OSError):  # the program already closed its end: it is ending
            if not self.writer.is_closing():
                self.writer.write_eof()
        if await self.wait(timeout) is None:
            self.abort()
            if await self.wait(5) is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.wait(5)
        self.writer.close()
        self._stop_reading()

    def _stop_reading(self) -> None:
        """Unwatch stdout now, through its transport (which also closes it). An `ssh -W`
        through a kept connection hands its stdout to the master, which may close it after the
        client exited: until then no end-of-file comes, and the event loop keeps watching the
        descriptor's number. Closed by anyone else, that number is soon the next `ssh`'s
        stdout, which the loop then believes it watches and never reads (a handshake that
        waits for its timeout)."""
        self.read_transport.close()

    async def stderr_tail(self) -> str:
        try:
            with self.spawned.stderr_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4000))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


class OpenSshHostAgent(ProgramAgent):
    def __init__(
        self,
        spawned: Spawned,
        target: TargetConfig,
        channel: ProcessChannel,
        env: Mapping[str, str],
        base: Path,
    ) -> None:
        super().__init__(spawned.login.name, target, channel)
        self.spawned = spawned
        self.process = channel
        self.env, self.base = env, base
        self._audit_stack: AsyncExitStack | None = None

    async def no_greeting(self) -> TransportError:
        status = await self.process.wait(5)
        if status is None:
            self.channel.abort()
        err = await self.channel.stderr_tail()
        refined = login_error(self.spawned.login, status, err)
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
                await self.process.wait(5)
            else:
                await super().close()


class OpenSshConnector:
    """Connections through `ssh` with the target's pinned host key and deploy key."""

    def __init__(self, env: Mapping[str, str], base: Path, ssh: str) -> None:
        self.env = env
        self.base = base  # resolves relative identity / known_hosts files
        self.ssh = ssh
        #: Processes started ahead, by target name.
        self._ready: dict[str, Ready] = {}

    def _start(self, name: str, target: TargetConfig, cold: bool = False) -> Ready:
        spec = LoginSpec.of(target)
        if cold:
            # After a failed warm attempt: a connection of its own, so that a kept connection
            # in a bad state (one the server stopped giving sessions, say) cannot hold it up.
            login = prepare_login(name, spec, self.env, self.base, self.ssh)
            spawned = spawn(login.alone(), agent_command(target.python))
            # Recorded under the kept connection's name, which the next command uses.
            spawned = dataclasses.replace(spawned, login=login)
            return Ready(spec, target.python, target.path, spawned, None)
        return warm.start_process(
            name, spec, target.python, target.path, self.env, self.base, self.ssh
        )

    def adopt(self, name: str, ready: Ready) -> None:
        """A process started before the config was validated (bot/cli/deploy.py); used by
        `connect` only if the target asks for exactly this login, interpreter and path."""
        self._ready[name] = ready

    async def prestart(self, name: str, target: TargetConfig) -> None:
        """Start connecting to `name` now; the next `connect(name, target)` takes it."""
        if name not in self._ready:
            self._ready[name] = self._start(name, target)

    async def _open(self, ready: Ready, target: TargetConfig) -> OpenSshHostAgent:
        channel = await ProcessChannel.attach(ready.spawned)
        agent = OpenSshHostAgent(ready.spawned, target, channel, self.env, self.base)
        try:
            key = ready.warm.key if ready.warm is not None else None
            await agent.handshake(target.connect_timeout_s + 30, key)
        except BaseException:
            ready.impostor = agent.impostor
            if ready.warm is not None:
                # Let a refused channel close by itself: an `ssh` killed in the middle of a
                # forwarded channel can leave the kept connection unable to open the next one.
                await channel.finish(2)
            else:
                channel.abort()
                await channel.wait(5)
            raise
        return agent

    async def _keep(self, agent: OpenSshHostAgent, ready: Ready) -> None:
        """Ask a new host program to linger for the next command (best effort)."""
        key = warm.new_key()
        try:
            kept = await agent.linger(Linger(ready.spec.persist_s, key.hex()))
        except (AgentError, GatebotError):
            return
        warm.save(ready.spawned.login, ready.python, kept.port, key)

    @asynccontextmanager
    async def connect(self, name: str, target: TargetConfig) -> AsyncIterator[HostAgent]:
        ready = self._ready.pop(name, None)
        wanted = (LoginSpec.of(target), target.python, target.path)
        if ready is None or (ready.spec, ready.python, ready.root) != wanted:
            if ready is not None:
                await _discard(ready.spawned)
            ready = self._start(name, target)
        try:
            agent = await self._open(ready, target)
        except TransportError:
            if ready.warm is None:
                ready.spawned.login.close()
                raise
            # The lingering program is gone (it timed out, the host rebooted): start one.
            warm.forget(ready.warm)
            await _discard(ready.spawned)
            impostor = ready.impostor
            ready = self._start(name, target, cold=True)
            agent = await self._open(ready, target)
            if impostor:
                agent.connect_notes = (IMPOSTOR_NOTE,)
        try:
            yield agent
            if ready.warm is None and ready.spec.persist_s > 0 and not agent.broken:
                await self._keep(agent, ready)
        finally:
            try:
                await agent.close()
            finally:
                ready.spawned.login.close()

    async def aclose(self) -> None:
        """Stop the connections started ahead and never taken."""
        ready, self._ready = self._ready, {}
        for r in ready.values():
            await _discard(r.spawned)


async def _discard(spawned: Spawned) -> None:
    """Stop a process started ahead and never used: close its pipes, SIGTERM, SIGKILL last."""
    for pipe in (spawned.proc.stdin, spawned.proc.stdout):
        if pipe is not None:
            pipe.close()
    loop = asyncio.get_running_loop()
    for stop in (spawned.proc.terminate, spawned.proc.kill):
        if spawned.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                stop()
        deadline = loop.time() + 2
        while spawned.proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.005)
    spawned.login.close()
