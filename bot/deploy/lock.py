"""The deploy lock: an atomic `mkdir <path>/.gatebot/lock` on the host, with owner.json inside.

`mkdir` either creates the directory or fails, atomically, so two deploys can never both hold it.
The owner (run id, runner, host, pid, start time, operation) is written into the lock so a lock
left by a killed deploy is reported with whose it was, and `gatebot unlock --owner RUN_ID` can
remove exactly that one. A held lock is waited on for `lock_wait_s`, then LockHeld.

The lock is released in `finally` (a cancelled workflow sends SIGINT/SIGTERM, which the CLI turns
into task cancellation, so `finally` runs). When the connection itself died, release retries once
on a fresh connection. The host side is op_lock_acquire / op_lock_release in
bot/deploy/hostside/fsops.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import LockAcquire, LockRelease, LockReleased
from bot.deploy.layout import RemoteLayout
from bot.errors import LockHeld, TransportError


@dataclass(frozen=True)
class LockOwner:
    run_id: str
    runner: str
    host: str
    pid: int
    started_at: str
    op: str

    @classmethod
    def from_json(cls, data: Any) -> LockOwner | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                run_id=str(data["run_id"]),
                runner=str(data.get("runner", "?")),
                host=str(data.get("host", "?")),
                pid=int(data.get("pid", 0)),
                started_at=str(data.get("started_at", "?")),
                op=str(data.get("op", "?")),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            # OverflowError: int() of a JSON number beyond a float (1e400 parses as inf).
            return None

    def describe(self) -> str:
        return (
            f"run {self.run_id} ({self.op}) on runner {self.runner}, host {self.host}, "
            f"pid {self.pid}, since {self.started_at}"
        )


def run_id_from_env(env: Mapping[str, str]) -> str:
    """The Actions run id (with attempt) when in a workflow, GATEBOT_RUN_ID if set, else random."""
    if env.get("GATEBOT_RUN_ID"):
        return env["GATEBOT_RUN_ID"]
    if env.get("GITHUB_RUN_ID"):
        return f"{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    return f"local-{uuid.uuid4().hex[:12]}"


def new_owner(op: str, env: Mapping[str, str], run_id: str | None = None) -> LockOwner:
    return LockOwner(
        run_id=run_id or run_id_from_env(env),
        runner=env.get("RUNNER_NAME") or "local",
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        op=op,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staleness(owner: LockOwner | None, age_s: float | None) -> str:
    """Why a held lock looks stale, or "" when it looks alive. Never acted on automatically."""
    if owner is None:
        return "the lock has no readable owner.json (a deploy died while taking it)"
    if owner.host == socket.gethostname() and owner.pid > 0 and not _pid_alive(owner.pid):
        return f"its process {owner.pid} on {owner.host} is gone"
    if age_s is not None and age_s > 3600:
        return f"it is {age_s / 3600:.1f} h old"
    return ""


def held_message(target: str, owner: LockOwner | None, age_s: float | None) -> str:
    who = owner.describe() if owner else "an unknown owner"
    age = f", held for {age_s:.0f}s" if age_s is not None else ""
    stale = staleness(owner, age_s)
    text = f"{target}: the deploy lock is held by {who}{age}"
    if stale:
        text += f"; it looks stale: {stale}"
    return text


def unlock_hint(target: str, owner: LockOwner | None) -> str:
    if owner is None:
        return f"if no deploy is running: gatebot unlock --target {target} --force"
    return (
        f"if that run is gone: gatebot unlock --target {target} --owner {owner.run_id} (or --force)"
    )


#: A fresh connection to the same host (the lock is let go over it when the first one died).
Reopen = Callable[[], AbstractAsyncContextManager[HostAgent]]


class DeployLock:
    """Holds the target's lock through the deploy's host agent. No I/O until acquired."""

    def __init__(
        self,
        agent: HostAgent,
        layout: RemoteLayout,
        owner: LockOwner,
        *,
        wait_s: float,
        poll_s: float = 0.5,
        reopen: Reopen | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.agent = agent
        self.name = agent.name
        self.layout = layout
        self.owner = owner
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.reopen = reopen
        self.on_wait = on_wait
        self.held = False
        self.waited_s = 0.0

    async def acquire(self) -> None:
        start = time.monotonic()
        payload = json.dumps(asdict(self.owner))
        announced = False
        while True:
            try:
                info = await self.agent.lock_acquire(
                    LockAcquire(self.layout.state, self.layout.lock_dir, payload)
                )
            except AgentError as exc:
                raise TransportError(f"{self.name}: cannot take the deploy lock: {exc}") from None
            if not info.held:
                self.held = True
                self.waited_s = time.monotonic() - start
                return
            owner = LockOwner.from_json(info.owner)
            age = info.now - info.since if info.since and info.now else None
            if time.monotonic() - start >= self.wait_s:
                raise LockHeld(
                    held_message(self.name, owner, age)
                    + f" (waited {time.monotonic() - start:.0f}s)",
                    hint=unlock_hint(self.name, owner),
                )
            if not announced and self.on_wait is not None:
                self.on_wait(held_message(self.name, owner, age) + "; waiting")
            announced = True
            await asyncio.sleep(self.poll_s)

    async def release(self) -> None:
        if not self.held:
            return
        try:
            await release_lock(self.agent, self.layout, self.owner.run_id)
        except TransportError:
            if self.reopen is None:
                raise
            # The connection died (cut upload, network): take a fresh one just to let go.
            async with self.reopen() as fresh:
                await release_lock(fresh, self.layout, self.owner.run_id)
        self.held = False


async def release_lock(agent: HostAgent, layout: RemoteLayout, run_id: str) -> LockReleased:
    """Remove the lock if `run_id` owns it ("*" = whoever owns it). Returns what was found."""
    try:
        return await agent.lock_release(LockRelease(layout.lock_dir, run_id))
    except AgentError as exc:
        raise TransportError(f"{agent.name}: cannot remove the deploy lock: {exc}") from None
