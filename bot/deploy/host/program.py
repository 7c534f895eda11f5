"""The host program's client: typed requests and validated answers over one byte channel.

The host program (bot/deploy/hostside/) is started as `python -S -c SOURCE serve` and answers
one request per line (the wire is described in bot/deploy/hostside/protocol.py). How the
channel reaches the host is the transport's business: an asyncssh exec channel
(bot/deploy/host/ssh.py) or the stdin/stdout of OpenSSH's `ssh` (bot/deploy/host/openssh.py).
Both give a `Channel`; everything above it is here, once.

Every answer is validated against its operation's answer type before anyone reads it: a broken
or compromised host is a TransportError, never a crash. A long-running request may send
`out <JSON string>` lines before its answer (a hook's output as it runs); they go to the
request's `on_output`, cut to `OUTPUT_LINE_MAX` characters each.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from pydantic import TypeAdapter, ValidationError

from bot.deploy.host.base import AgentError, HostAgent, OnOutput
from bot.deploy.hostside import linger as lingering
from bot.deploy.hostside import protocol as p
from bot.errors import TransportError

if TYPE_CHECKING:
    from bot.config.deploy import TargetConfig

A = TypeVar("A", bound=NamedTuple)
_BY_REQUEST = {op.request: op for op in p.OPERATIONS}
#: Characters kept of one output line a host streams (the rest is cut, never buffered).
OUTPUT_LINE_MAX = p.OUTPUT_LINE_MAX


@cache
def _adapter(answer: type) -> TypeAdapter[Any]:
    return TypeAdapter(answer)


class Channel(Protocol):
    """A byte channel to the host program. Failures of the link are OSError."""

    async def readline(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def abort(self) -> None:
        """Close at once (no more use: a late reply must never be read as another's answer)."""

    async def finish(self, timeout: float) -> None:
        """End of input, then wait for the program to exit (abort after `timeout`)."""

    async def stderr_tail(self) -> str:
        """What the remote side (or the transport) said on stderr, for an error message."""


class ProgramAgent(HostAgent):
    """The host program over a `Channel`. Subclasses add how it starts and the audit."""

    def __init__(self, name: str, target: TargetConfig, channel: Channel) -> None:
        self.name = name
        self.target = target
        self.channel = channel
        self._lock = asyncio.Lock()
        # Set when a request was interrupted (cancelled, timed out, cut) or answered with
        # garbage: a late reply could be taken for the answer to the next request, so the
        # channel is not used again.
        self.broken: str | None = None
        #: The lingering port answered without proving it holds the key (handshake).
        self.impostor = False

    async def handshake(self, timeout: float, key: bytes | None = None) -> None:
        """Read the program's greeting; a TransportError saying why when it does not come.
        `key`: the program is a lingering copy that first challenges us (hostside/linger.py)."""
        if key is not None:
            await self._prove(timeout, key)
        hello = await self._readline(timeout)
        if not hello:
            raise await self.no_greeting()
        status, body = self._split("its greeting", hello)
        greeting = self._json(body) if status == "hello" else None
        if not isinstance(greeting, dict):
            raise self._garbage("its greeting", hello)
        self.python_version = str(greeting.get("python", ""))

    async def _prove(self, timeout: float, key: bytes) -> None:
        """Both ways (hostside/linger.py): answer the copy's nonce, then send nothing more until
        it answered ours. A process that took the port of a copy that exited gets no request."""
        challenge = await self._readline(timeout)
        if not challenge.startswith(p.CHALLENGE):
            raise TransportError(f"{self.name}: the lingering host agent did not answer")
        try:
            nonce = bytes.fromhex(challenge[len(p.CHALLENGE) :].decode("ascii").strip())
        except ValueError:
            raise self._garbage("its challenge", challenge) from None
        mine = os.urandom(lingering.NONCE_BYTES)
        await self._write(lingering.client_proof(key, nonce) + b" " + mine.hex().encode() + b"\n")
        line = await self._readline(timeout)
        if line.strip() == b"denied":
            raise TransportError(f"{self.name}: the lingering host agent refused the key")
        expected = p.PROOF + lingering.server_proof(key, mine, nonce)
        if not hmac.compare_digest(line.strip(), expected):
            self.impostor = True
            raise TransportError(
                f"{self.name}: the program on the lingering host agent's port did not prove it "
                "holds the key; nothing was sent to it"
            )

    async def no_greeting(self) -> TransportError:
        """The error when the channel closed before the greeting (transports refine it)."""
        try:
            err = await asyncio.wait_for(self.channel.stderr_tail(), timeout=5)
        except (asyncio.TimeoutError, OSError):
            err = ""
        return TransportError(
            f"{self.name}: the host agent did not start with {self.target.python}: "
            f"{err.strip()[-400:] or 'no output'}",
            hint="set deploy.targets.<name>.python to a Python 3.6+ interpreter on the host",
        )

    # ---- the channel ---------------------------------------------------------------------

    def _garbage(self, what: str, line: bytes) -> TransportError:
        shown = line[:80].decode("utf-8", "replace").strip()
        return TransportError(
            f"{self.name}: the host agent answered {what} with garbage: {shown!r}",
            hint=f"check deploy.targets.{self.name}.python on the host",
        )

    def _split(self, what: str, line: bytes) -> tuple[str, bytes]:
        status, _, body = line.partition(b" ")
        if status not in (b"hello", b"ok", b"error", b"out"):
            raise self._garbage(what, line)
        return status.decode("ascii"), body

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
            return None

    def _lost(self, exc: BaseException | str) -> TransportError:
        return TransportError(f"{self.name}: connection to the host lost: {exc}")

    async def _readline(self, timeout: float) -> bytes:
        try:
            return await asyncio.wait_for(self.channel.readline(), timeout=timeout)
        except asyncio.TimeoutError:
            raise TransportError(
                f"{self.name}: the host agent did not answer within {timeout:.0f}s"
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: a line over the reader's limit
            raise self._lost(exc or type(exc).__name__) from None

    async def _write(self, data: bytes) -> None:
        try:
            self.channel.write(data)
            await self.channel.drain()
        except OSError as exc:
            raise self._lost(exc or type(exc).__name__) from None

    def _answer(self, op: p.Operation, line: bytes) -> Any:
        if not line:
            raise self._lost(f"the host agent exited during {op.name}")
        try:
            status, body = self._split(f"the {op.name} request", line)
            if status == "error":
                message = self._json(body)
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
        self.channel.abort()

    @staticmethod
    def _request_line(op: p.Operation, req: NamedTuple) -> bytes:
        return json.dumps({"op": op.name, "args": req._asdict()}).encode("utf-8") + b"\n"

    @staticmethod
    def _wait(op: p.Operation, req: NamedTuple) -> float:
        return op.wait + float(getattr(req, "timeout", 0))

    async def _final_line(
        self, op: p.Operation, wait: float, on_output: Callable[[str], None] | None
    ) -> bytes:
        """The answer line, passing `out` lines before it to `on_output`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            line = await self._readline(max(0.01, deadline - loop.time()))
            if not line.startswith(b"out "):
                return line
            text = self._json(line[4:])
            if not isinstance(text, str):
                self.broken = f"garbage output line during {op.name}"
                raise self._garbage(f"the {op.name} request", line)
            if on_output is not None:
                on_output(text[:OUTPUT_LINE_MAX])

    async def _call(
        self, req: NamedTuple, answer: type[A], on_output: Callable[[str], None] | None = None
    ) -> A:
        op = _BY_REQUEST[type(req)]
        async with self._lock:  # one request in flight: replies come back in order
            self._check()
            try:
                await self._write(self._request_line(op, req))
                line = await self._final_line(op, self._wait(op, req), on_output)
            except BaseException as exc:
                if not self.broken:
                    self._poison(op.name, exc)
                else:
                    self.channel.abort()
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

    async def start_venv(self, req: p.StartVenv) -> p.Started:
        return await self._call(req, p.Started)

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

    async def command(self, req: p.Command, on_output: OnOutput | None = None) -> p.CommandAnswer:
        return await self._call(req, p.CommandAnswer, on_output)

    async def write_env(self, req: p.WriteEnv) -> p.EnvWritten:
        return await self._call(req, p.EnvWritten)

    async def start_service(self, req: p.StartService) -> p.ServiceStarted:
        return await self._call(req, p.ServiceStarted)

    async def wait_healthy(self, req: p.WaitHealthy, on_output: OnOutput | None = None) -> p.Health:
        return await self._call(req, p.Health, on_output)

    async def stop_service(self, req: p.StopService) -> p.ServiceStopped:
        return await self._call(req, p.ServiceStopped)

    async def linger(self, req: p.Linger) -> p.Lingering:
        return await self._call(req, p.Lingering)

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

    async def close(self) -> None:
        if self.broken:
            return
        await self.channel.finish(timeout=5)
