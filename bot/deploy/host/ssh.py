"""The real host over asyncssh: the host program (bot/deploy/host/program.py) on ONE exec
channel of an in-process SSH connection, and the audit over the same connection.

The other transport is OpenSSH's `ssh` command (bot/deploy/host/openssh.py); this one is used
where no `ssh` client is installed, or when a target sets `ssh_client: asyncssh`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AuditRequest, HostAgent
from bot.deploy.host.program import ProgramAgent
from bot.deploy.hostside.bundle import agent_command
from bot.errors import TransportError
from bot.ssh.credentials import load_credentials
from bot.ssh.session import SSHSession, open_session

if TYPE_CHECKING:
    from bot.audit.report import AuditReport


class AsyncsshChannel:
    """An asyncssh exec channel as a `Channel` (its errors become OSError)."""

    def __init__(self, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.proc = proc

    async def readline(self) -> bytes:
        try:
            return await self.proc.stdout.readline()
        except asyncssh.Error as exc:
            raise OSError(str(exc) or type(exc).__name__) from None

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
        except asyncssh.Error as exc:
            raise OSError(str(exc) or type(exc).__name__) from None

    async def drain(self) -> None:
        try:
            await self.proc.stdin.drain()
        except asyncssh.Error as exc:
            raise OSError(str(exc) or type(exc).__name__) from None

    def abort(self) -> None:
        self.proc.close()

    async def finish(self, timeout: float) -> None:
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait_closed(), timeout=timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            self.proc.close()

    async def stderr_tail(self) -> str:
        try:
            data = await self.proc.stderr.read()
        except asyncssh.Error:
            return ""
        return data.decode("utf-8", "replace")[-2000:]


class SshHostAgent(ProgramAgent):
    """A running host program on an asyncssh connection. Use `SshHostAgent.start(session)`;
    the constructor does no I/O."""

    def __init__(self, session: SSHSession, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        super().__init__(session.name, session.target, AsyncsshChannel(proc))
        self.session = session
        self.proc = proc

    @classmethod
    async def start(cls, session: SSHSession, timeout: float = 30.0) -> SshHostAgent:
        try:
            proc = await session.conn.create_process(
                agent_command(session.target.python), encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(f"{session.name}: cannot start the host agent: {exc}") from None
        agent = cls(session, proc)
        await agent.handshake(timeout)
        return agent

    async def audit(self, req: AuditRequest) -> AuditReport:
        # Imported here: only a deploy that audits pays for the audit's modules.
        from bot.audit.run import run_audit

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


class SshConnector:
    """Connections over asyncssh with the target's pinned host key and deploy key."""

    def __init__(self, env: Mapping[str, str], base: Path) -> None:
        self.env = env
        self.base = base  # resolves relative identity / known_hosts files

    @asynccontextmanager
    async def connect(self, name: str, target: TargetConfig) -> AsyncIterator[HostAgent]:
        creds = load_credentials(name, target, self.env, self.base)
        async with open_session(name, target, creds) as session:
            agent = await SshHostAgent.start(session)
            try:
                yield agent
            finally:
                await agent.close()
