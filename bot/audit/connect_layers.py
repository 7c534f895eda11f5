"""Layers 1-2: TCP reachability of the SSH port, and the SSH handshake (pinned key, key auth)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from bot.audit.context import AuditContext, Outcome, failed, passed
from bot.config.deploy import TargetConfig


async def check_network(target: TargetConfig, name: str) -> Outcome:
    """Open (and close) one TCP connection to the SSH port and time it."""
    where = f"{target.host}:{target.port}"
    start = time.perf_counter()
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), timeout=target.connect_timeout_s
        )
    except asyncio.TimeoutError:
        return failed(
            f"no TCP answer from {where} within {target.connect_timeout_s:.0f}s: the host is down "
            f"or a firewall drops the SSH port (check deploy.targets.{name}.host/port)"
        )
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return failed(
            f"cannot reach {where}: {reason}; check deploy.targets.{name}.host/port and that "
            "sshd is running there"
        )
    latency_ms = (time.perf_counter() - start) * 1000
    writer.close()
    # The peer may reset a connection we close without speaking SSH; reachability is proven.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return passed(f"{where} reachable, TCP connect {latency_ms:.1f} ms", connect_ms=latency_ms)


async def check_session(ctx: AuditContext) -> Outcome:
    """With deploy's session already open, prove it still runs commands; time a round trip."""
    session = ctx.ssh()
    start = time.perf_counter()
    res = await session.run("true", timeout=ctx.timeout_of("ssh"))
    rtt = (time.perf_counter() - start) * 1000
    if not res.ok:
        return failed(f"the SSH session cannot run commands (exit {res.exit_status})")
    t = ctx.target
    return passed(
        f"{t.user}@{t.host}:{t.port}: pinned host key verified, key auth; command round trip "
        f"{rtt:.0f} ms",
        rtt_ms=rtt,
    )
