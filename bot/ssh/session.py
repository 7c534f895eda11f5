"""One asyncssh connection per host, with commands that have timeouts and typed failures."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncssh

from bot.config.deploy import TargetConfig
from bot.errors import HostKeyMismatch, TransportError
from bot.ssh.credentials import Credentials


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
]


def quote(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


class SSHSession:
    """A live connection. Use `open_session` to get one; this class does no I/O on construction."""

    def __init__(self, name: str, target: TargetConfig, conn: asyncssh.SSHClientConnection) -> None:
        self.name = name
        self.target = target
        self.conn = conn

    async def run(
        self,
        command: str | Sequence[str],
        *,
        input: str | bytes | None = None,
        timeout: float = 60.0,
        check: bool = False,
    ) -> CommandResult:
        cmd = command if isinstance(command, str) else quote(command)
        try:
            proc = await asyncio.wait_for(
                self.conn.run(cmd, input=input, check=False, encoding="utf-8", errors="replace"),
                timeout=timeout,
            )
        except asyncio.TimeoutError:
            raise TransportError(
                f"{self.name}: remote command timed out after {timeout:.0f}s: {cmd[:120]}"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(
                f"{self.name}: connection failed while running a command: {exc}"
            ) from None
        status = proc.exit_status if proc.exit_status is not None else 255
        result = CommandResult(cmd, status, str(proc.stdout or ""), str(proc.stderr or ""))
        if check and not result.ok:
            tail = (result.stderr or result.stdout).strip()[-800:]
            raise TransportError(
                f"{self.name}: remote command failed ({status}): {cmd[:120]}\n{tail}"
            )
        return result


async def connect(
    name: str, target: TargetConfig, creds: Credentials
) -> asyncssh.SSHClientConnection:
    where = f"{target.user}@{target.host}:{target.port}"
    try:
        return await asyncssh.connect(
            target.host,
            port=target.port,
            username=target.user,
            client_keys=[creds.client_key],
            known_hosts=creds.known_hosts,
            connect_timeout=target.connect_timeout_s,
            # Only the pinned key and the given key: no agent, no ~/.ssh guessing.
            agent_path=None,
            config=None,
            keepalive_interval=15,
            # AES-GCM first: in asyncssh it runs in OpenSSL and is about twice as fast as
            # chacha20-poly1305 for bulk uploads; both are offered by every OpenSSH server.
            encryption_algs=_CIPHERS,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyMismatch(
            f"{name}: host key of {target.host}:{target.port} does not match the pinned "
            f"known_hosts entries ({', '.join(creds.pinned_hosts)}): {exc.reason}",
            hint="verify the host key out of band and update the pinned known_hosts",
        ) from None
    except asyncssh.PermissionDenied:
        raise TransportError(
            f"{name}: key authentication as {where} was refused",
            hint="install the deploy public key in the user's authorized_keys",
        ) from None
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
        raise TransportError(
            f"{name}: cannot connect to {where}: {exc or type(exc).__name__}"
        ) from None


@asynccontextmanager
async def open_session(
    name: str, target: TargetConfig, creds: Credentials
) -> AsyncIterator[SSHSession]:
    conn = await connect(name, target, creds)
    try:
        yield SSHSession(name, target, conn)
    finally:
        conn.close()
        await conn.wait_closed()
