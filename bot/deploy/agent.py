"""The client side of the host agent (see agent_script.py): one channel, JSON line requests.

`call` sends one request and waits for its reply; `stream` sends a request followed by a byte
stream in length-prefixed frames (the upload's records) on the same channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import asyncssh

from bot.errors import TransportError
from bot.ssh.session import SSHSession, quote

Send = Callable[[bytes], Awaitable[None]]


@cache
def agent_source() -> str:
    """The host program's source text (shipped as `python -S -c SOURCE serve`)."""
    return Path(__file__).with_name("agent_script.py").read_text(encoding="utf-8")


class AgentError(Exception):
    """The agent ran the request and it failed on the host (message from the host)."""


class Agent:
    """A running host agent. Use `Agent.start(session)`; the constructor does no I/O."""

    def __init__(self, session: SSHSession, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.session = session
        self.proc = proc
        self._lock = asyncio.Lock()
        self.python_version = ""
        self.streamed = 0  # bytes written by the current/last `stream` call
        # Set when a request was interrupted (cancelled, timed out, cut): a late reply could be
        # taken for the answer to the next request, so the channel is not used again.
        self.broken: str | None = None

    @classmethod
    async def start(cls, session: SSHSession, timeout: float = 30.0) -> Agent:
        cmd = quote([session.target.python, "-S", "-c", agent_source(), "serve"])
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
        agent.python_version = str(agent._decode("its greeting", hello).get("python", ""))
        return agent

    def _decode(self, what: str, line: bytes) -> dict[str, Any]:
        """One line from the host agent as a JSON object; anything else (a compromised or
        broken host, a wrong interpreter) is a TransportError naming the host."""
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
            data = None
        if not isinstance(data, dict):
            shown = line[:80].decode("utf-8", "replace").strip()
            raise TransportError(
                f"{self.session.name}: the host agent answered {what} with garbage, not a JSON "
                f"object: {shown!r}",
                hint=f"check deploy.targets.{self.session.name}.python on the host",
            )
        return data

    def _lost(self, exc: BaseException | str) -> TransportError:
        return TransportError(f"{self.session.name}: connection to the host lost: {exc}")

    async def _readline(self, timeout: float) -> bytes:
        try:
            return await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        except asyncio.TimeoutError:
            raise TransportError(
                f"{self.session.name}: the host agent did not answer within {timeout:.0f}s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc) from None

    async def _write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc or type(exc).__name__) from None

    def _reply(self, op: str, line: bytes) -> Any:
        if not line:
            raise self._lost(f"the host agent exited during {op}")
        try:
            reply = self._decode(f"the {op} request", line)
        except TransportError:
            self.broken = f"garbage answer to {op}"  # replies may be out of step from here on
            raise
        if not reply.get("ok"):
            raise AgentError(str(reply.get("error", "unknown error")))
        if "result" not in reply:
            raise TransportError(f"{self.session.name}: the host agent's {op} reply has no result")
        return reply["result"]

    def _check(self) -> None:
        if self.broken:
            raise TransportError(
                f"{self.session.name}: the host agent channel is unusable ({self.broken})"
            )

    async def call(self, op: str, *, wait: float = 60.0, **args: Any) -> Any:
        """Run one operation on the host; AgentError when it failed there."""
        async with self._lock:  # one request in flight: replies come back in order
            self._check()
            try:
                await self._write(json.dumps({"op": op, "args": args}).encode("utf-8") + b"\n")
                line = await self._readline(wait)
            except BaseException as exc:
                self._poison(op, exc)
                raise
        return self._reply(op, line)

    def _poison(self, op: str, exc: BaseException) -> None:
        self.broken = f"{op} was interrupted: {type(exc).__name__}"
        self.proc.close()

    async def stream(
        self, op: str, produce: Callable[[Send], Awaitable[None]], *, wait: float, **args: Any
    ) -> Any:
        """Run `op` with a byte stream: `produce(send)` calls `send(chunk)` for each chunk."""
        async with self._lock:
            self._check()
            self.streamed = 0

            async def send(chunk: bytes) -> None:
                if chunk:
                    await self._write(len(chunk).to_bytes(4, "big") + chunk)
                    self.streamed += len(chunk)

            try:
                await self._write(json.dumps({"op": op, "args": args}).encode("utf-8") + b"\n")
                await produce(send)
                await self._write(b"\0\0\0\0")
                line = await self._readline(wait)
            except BaseException as exc:
                self._poison(op, exc)
                raise
        return self._reply(op, line)

    async def close(self) -> None:
        if self.broken:
            return
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait_closed(), timeout=5)
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            self.proc.close()
