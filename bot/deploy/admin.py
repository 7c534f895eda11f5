"""`gatebot releases` and `gatebot unlock`: read the releases of a host; remove a lock a dead
deploy left (only the one of a named run, or with --force)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.deploy import log as deploy_log
from bot.deploy.context import DeployContext
from bot.deploy.layout import RemoteLayout, sorted_releases
from bot.deploy.lock import LockOwner, release_lock
from bot.deploy.state import RemoteState, read_state
from bot.errors import LockHeld, UsageError


@dataclass(frozen=True)
class ReleaseRow:
    release: str
    sha: str
    live: bool
    bad: bool
    complete: bool
    created: str
    lock_hash: str


def release_rows(state: RemoteState) -> list[ReleaseRow]:
    """Newest first."""
    bad = state.bad
    rows = []
    for rid in reversed(sorted_releases(state.markers)):
        m = state.markers[rid]
        rows.append(
            ReleaseRow(
                release=rid,
                sha=m.sha if m else "",
                live=rid == state.live,
                bad=rid in bad,
                complete=m is not None,
                created=m.created_at if m else "",
                lock_hash=m.lock_hash if m else "",
            )
        )
    return rows


async def list_releases(ctx: DeployContext, name: str) -> tuple[list[ReleaseRow], RemoteState]:
    target = ctx.target(name)
    async with ctx.hosts().connect(name, target) as agent:
        state = await read_state(agent, RemoteLayout(target.path))
    return release_rows(state), state


async def unlock(ctx: DeployContext, name: str, owner: str | None, force: bool) -> str:
    """Remove a lock left by a dead deploy: only when `owner` names its run id, or `force`."""
    if not force and not owner:
        raise UsageError("say whose lock to remove: --owner RUN_ID, or --force")
    target = ctx.target(name)
    async with ctx.hosts().connect(name, target) as agent:
        layout = RemoteLayout(target.path)
        found = await release_lock(agent, layout, "*" if force else str(owner))
        who = LockOwner.from_json(found.owner)
        desc = who.describe() if who else "an unknown owner"
        if found.state == "absent":
            return f"{name}: not locked"
        if found.state == "other":
            raise LockHeld(
                f"{name}: the lock is held by {desc}, not by {owner}; left in place",
                hint=f"gatebot unlock --target {name} --owner {who.run_id if who else '?'}",
            )
        event = deploy_log.make_event(
            "unlock", detail=f"removed the lock of {desc}", run_id=ctx.run_id or None
        )
        await deploy_log.append_event(agent, layout, event)
        return f"{name}: removed the lock of {desc}"
