"""Run one audit command on the host, bounded in time, leaving no process behind.

sshd starts each command in a new session, so the remote shell is its own process-group
leader: its pid is the group id of everything it starts. The shell prints `$$` before it
execs the real command; on a timeout we kill that whole group over a second channel, then
close ours. A command that ends on its own is simply awaited.
"""

from __future__ import annotations

import asyncio
import shlex

import asyncssh

from bot.errors import TransportError
from bot.ssh.session import CommandResult, SSHSession

_PID_PREFIX = "gatebot-pgid "


class RemoteTimeout(Exception):
    """The remote command outlived its budget; its process group was killed."""

    def __init__(self, seconds: float, killed: bool) -> None:
        super().__init__(f"timed out after {seconds:.1f}s")
        self.seconds = seconds
        self.killed = killed


async def _kill_group(session: SSHSession, pgid: int) -> bool:
    try:
        res = await session.run(
            f"kill -KILL -- -{pgid} 2>/dev/null || kill -KILL {pgid} 2>/dev/null; true",
            timeout=5,
        )
    except TransportError:
        return False
    return res.ok


async def run_bounded(
    session: SSHSession,
    command: str,
    *,
    timeout: float,
    input: str | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run `command` (a shell string) with `input` on stdin; kill its process group on timeout."""
    prefix = f"cd {shlex.quote(cwd)} && " if cwd else ""
    wrapped = f"echo {_PID_PREFIX}$$; {prefix}exec {command}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pgid: int | None = None
    try:
        proc = await asyncio.wait_for(
            session.conn.create_process(wrapped, encoding="utf-8", errors="replace"),
            timeout=timeout,
        )
    except asyncio.TimeoutError:
        raise RemoteTimeout(timeout, killed=False) from None
    except (asyncssh.Error, OSError) as exc:
        raise TransportError(f"{session.name}: cannot start a remote command: {exc}") from None
    try:
        if input is not None:
            proc.stdin.write(input)
        proc.stdin.write_eof()
        # Login files of some shells print before our command runs: skip to our pid line.
        preamble = ""
        for _ in range(50):
            line = await asyncio.wait_for(proc.stdout.readline(), max(0.01, deadline - loop.time()))
            if line.startswith(_PID_PREFIX):
                pgid = int(line[len(_PID_PREFIX) :].strip())
                break
            preamble += line
            if not line:
                break
        out, err = await asyncio.wait_for(proc.communicate(), max(0.01, deadline - loop.time()))
    except asyncio.TimeoutError:
        killed = await _kill_group(session, pgid) if pgid else False
        proc.close()
        raise RemoteTimeout(timeout, killed) from None
    except (asyncssh.Error, OSError) as exc:
        proc.close()
        raise TransportError(f"{session.name}: remote command failed: {exc}") from None
    status = proc.exit_status if proc.exit_status is not None else 255
    return CommandResult(command, status, preamble + str(out or ""), str(err or ""))


def tail(text: str, limit: int = 300) -> str:
    """The last meaningful line(s) of an output, short enough for a report cell."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    out = lines[-1]
    return out if len(out) <= limit else "…" + out[-limit:]
