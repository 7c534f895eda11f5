"""The real host: the host program (bot/deploy/hostside/) over ONE SSH channel per deploy.

The program is sent as source (`python -S -c SOURCE serve`) and answers one request per line
(the wire is described in bot/deploy/hostside/protocol.py), so a whole deploy costs one channel
instead of one per step (each exec channel starts the user's login shell, which can cost a
quarter second on its own). Every answer is validated against its operation's answer type
before anyone reads it: a broken or compromised host is a TransportError, never a crash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import asyncssh
from pydantic import TypeAdapter, ValidationError

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AgentError, AuditRequest, HostAgent
from bot.deploy.hostside import protocol as p
from bot.deploy.hostside.bundle import host_program
from bot.errors import TransportError
from bot.ssh.credentials import load_credentials
from bot.ssh.session import SSHSession, open_session, quote

if TYPE_CHECKING:
    from bot.audit.report import AuditReport

A = TypeVar("A", bound=NamedTuple)
_BY_REQUEST = {op.request: op for op in p.OPERATIONS}


@cache
def _adapter(answer: type) -> TypeAdapter[Any]:
    return TypeAdapter(answer)


class SshHostAgent(HostAgent):
    """A running host program. Use `SshHostAgent.start(session)`; the constructor does no I/O."""

    def __init__(self, session: SSHSession, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.session = session
        self.name = session.name
        self.target = session.target
        self.proc = proc
        self._lock = asyncio.Lock()
        # Set when a request was interrupted (cancelled, timed out, cut) or answered with
        # garbage: a late reply could be taken for the answer to the next request, so the
        # channel is not used again.
        self.broken: str | None = None

    @classmethod
    async def start(cls, session: SSHSession, timeout: float = 30.0) -> SshHostAgent:
        cmd = quote([session.target.python, "-S", "-c", host_program(), "serve"])
        try:
            proc = await session.conn.create_process(cmd, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(f"{session.name}: cannot start the host agent: {exc}") from None
        agent = cls(session, proc)
        hello = await agent._readline(timeout)
        if not hello:
            try:
                err = (await asyncio.wait_for(proc.stderr.read(), timeout=2)).decode(
                    "utf-8", "replace"
                )
            except (asyncio.TimeoutError, asyncssh.Error):
                err = ""
            raise TransportError(
                f"{session.name}: the host agent did not start with {session.target.python}: "
                f"{err.strip()[-400:] or 'no output'}",
                hint="set deploy.targets.<name>.python to a Python 3.6+ interpreter on the host",
            )
        status, body = agent._split("its greeting", hello)
        greeting = agent._json("its greeting", body) if status == "hello" else None
        if not isinstance(greeting, dict):
            raise agent._garbage("its greeting", hello)
        agent.python_version = str(greeting.get("python", ""))
        return agent

    # ---- the channel ---------------------------------------------------------------------

    def _garbage(self, what: str, line: bytes) -> TransportError:
        shown = line[:80].decode("utf-8", "replace").strip()
        return TransportError(
            f"{self.name}: the host agent answered {what} with garbage: {shown!r}",
            hint=f"check deploy.targets.{self.name}.python on the host",
        )

    def _split(self, what: str, line: bytes) -> tuple[str, bytes]:
        status, _, body = line.partition(b" ")
        if status not in (b"hello", b"ok", b"error"):
            raise self._garbage(what, line)
        return status.decode("ascii"), body

    def _json(self, what: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
            return None

    def _lost(self, exc: BaseException | str) -> TransportError:
        return TransportError(f"{self.name}: connection to the host lost: {exc}")

    async def _readline(self, timeout: float) -> bytes:
        try:
            return await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        except asyncio.TimeoutError:
            raise TransportError(
                f"{self.name}: the host agent did not answer within {timeout:.0f}s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc) from None

    async def _write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc or type(exc).__name__) from None

    def _answer(self, op: p.Operation, line: bytes) -> Any:
        if not line:
            raise self._lost(f"the host agent exited during {op.name}")
        try:
            status, body = self._split(f"the {op.name} request", line)
            if status == "error":
                message = self._json(op.name, body)
                if not isinstance(message, str):
                    raise self._garbage(f"the {op.name} request", line)
                raise AgentError(message)
            if status != "ok":
                raise self._garbage(f"the {op.name} request", line)
            try:
                return _adapter(op.answer).validate_json(body, strict=True)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"]) or "(top level)"
                raise TransportError(
                    f"{self.name}: the host agent's {op.name} answer is malformed "
                    f"({exc.error_count()} errors; at {where}: {first['msg']})"
                ) from None
        except TransportError:
            self.broken = f"garbage answer to {op.name}"  # replies may be out of step now
            raise

    def _check(self) -> None:
        if self.broken:
            raise TransportError(f"{self.name}: the host agent channel is unusable ({self.broken})")

    def _poison(self, op: str, exc: BaseException) -> None:
        self.broken = f"{op} was interrupted: {type(exc).__name__}"
        self.proc.close()

    def _request_line(self, op: p.Operation, req: NamedTuple) -> bytes:
        return json.dumps({"op": op.name, "args": req._asdict()}).encode("utf-8") + b"\n"

    def _wait(self, op: p.Operation, req: NamedTuple) -> float:
        return op.wait + float(getattr(req, "timeout", 0))

    async def _call(self, req: NamedTuple, answer: type[A]) -> A:
        op = _BY_REQUEST[type(req)]
        async with self._lock:  # one request in flight: replies come back in order
            self._check()
            try:
                await self._write(self._request_line(op, req))
                line = await self._readline(self._wait(op, req))
            except BaseException as exc:
                self._poison(op.name, exc)
                raise
        out: A = self._answer(op, line)
        return out

    # ---- the operations ------------------------------------------------------------------

    async def inspect(self, req: p.Inspect) -> p.InspectAnswer:
        return await self._call(req, p.InspectAnswer)

    async def lock_acquire(self, req: p.LockAcquire) -> p.LockAcquired:
        return await self._call(req, p.LockAcquired)

    async def lock_release(self, req: p.LockRelease) -> p.LockReleased:
        return await self._call(req, p.LockReleased)

    async def hash(self, req: p.Hash) -> p.HashAnswer:
        return await self._call(req, p.HashAnswer)

    async def verify_hash(self, req: p.VerifyHash) -> p.Verified:
        return await self._call(req, p.Verified)

    async def seed(self, req: p.Seed) -> p.Seeded:
        return await self._call(req, p.Seeded)

    async def prepare_next(self, req: p.PrepareNext) -> p.Started:
        return await self._call(req, p.Started)

    async def link(self, req: p.Link) -> p.Done:
        return await self._call(req, p.Done)

    async def build_venv(self, req: p.BuildVenv) -> p.CommandAnswer:
        return await self._call(req, p.CommandAnswer)

    async def write_file(self, req: p.WriteFile) -> p.Done:
        return await self._call(req, p.Done)

    async def append(self, req: p.Append) -> p.Done:
        return await self._call(req, p.Done)

    async def switch(self, req: p.Switch) -> p.Done:
        return await self._call(req, p.Done)

    async def shell(self, req: p.Shell) -> p.CommandAnswer:
        return await self._call(req, p.CommandAnswer)

    async def remove(self, req: p.Remove) -> p.Done:
        return await self._call(req, p.Done)

    async def extract(
        self, req: p.Extract, chunks: Iterable[bytes], sent: Callable[[int], None]
    ) -> p.Extracted:
        op = p.BY_NAME["extract"]
        async with self._lock:
            self._check()
            try:
                await self._write(self._request_line(op, req))
                for chunk in chunks:
                    if chunk:
                        await self._write(len(chunk).to_bytes(4, "big") + chunk)
                        sent(len(chunk))
                await self._write(p.FRAME_END)
                line = await self._readline(op.wait)
            except BaseException as exc:
                self._poison(op.name, exc)
                raise
        out: p.Extracted = self._answer(op, line)
        return out

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

    async def close(self) -> None:
        if self.broken:
            return
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait_closed(), timeout=5)
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            self.proc.close()


class SshConnector:
    """Connections over SSH with the target's pinned host key and deploy key."""

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
