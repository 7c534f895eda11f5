"""Step `recover`: put the previous good release back live when the new one misbehaved once
live (a failed restart or audit), or when the link died after the switch was asked for.

Both always raise: DeployFailed after a misbehaving release (saying what is live now),
TransportError after a lost link (exit 3: the cause is the link), with how to recover by hand
when even a fresh connection fails. The failed release is marked bad in the deploy log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from bot.deploy.state import read_state
from bot.deploy.steps.base import HostRun, run_hooks
from bot.deploy.steps.golive import AuditOutcome, audit
from bot.deploy.steps.health import after_rollback
from bot.deploy.switch import restart, switch_current
from bot.errors import DeployFailed, GatebotError, TransportError


@dataclass(frozen=True)
class Recovery:
    failed: str  # the release that misbehaved or was cut
    live: str | None  # what is live after the recovery
    rolled_back: bool  # `live` is the fallback, put back by this run
    audit: AuditOutcome | None = None  # the fallback's audit, when it ran again


async def auto_rollback(run: HostRun, failed: str, fallback: str | None, reason: str) -> NoReturn:
    """Put `fallback` back live after `failed` misbehaved; always raises DeployFailed."""
    if fallback is None or fallback == failed:
        await run.log("bad", release=failed, ok=False, detail=reason)
        run.recovery = Recovery(failed, failed, False)
        raise DeployFailed(
            f"{run.name}: {reason}; there is no earlier good release to roll back to, so "
            f"{failed} stays live and is marked bad"
        )
    run.say(f"{reason}: rolling back to {fallback}")
    with run.phase("rollback"):
        await switch_current(run.agent, run.layout, fallback)
        await run.log("rollback", release=fallback, previous=failed, detail=reason)
        await run.log("bad", release=failed, ok=False, detail=reason)
    run.live = fallback
    run.recovery = Recovery(failed, fallback, True)
    state = await read_state(run.agent, run.layout)
    marker = state.markers.get(fallback)
    sha = marker.sha if marker else ""
    restart_note = ""
    if run.target.health is not None:
        restart_note = f"; {await after_rollback(run, failed, fallback)}"
    else:
        try:
            await restart(run.agent, run.layout, run.target, fallback, sha)
        except DeployFailed as exc:
            restart_note = f"; the restart after the rollback failed too: {exc.message}"
    again = await audit(run, fallback, sha)
    run.recovery = Recovery(failed, fallback, True, again)
    restart_note += await _after_rollback_hooks(run)
    verdict = "passed" if again.passed else f"FAILED ({again.summary})"
    raise DeployFailed(
        f"{run.name}: {failed} failed: {reason}. Rolled back automatically: {fallback} is live "
        f"(its audit {verdict}){restart_note}; {failed} is marked bad"
    )


async def recover_after_cut(
    run: HostRun, failed: str, fallback: str | None, cause: TransportError
) -> NoReturn:
    """The link died after `current` was (maybe) switched to `failed`, which was then never
    restarted or audited to the end: reconnect and put `fallback` back live, as a failed
    audit would. Always raises TransportError saying what is live."""
    lost = cause.message
    run.say(f"{lost}: reconnecting to roll back to {fallback or '(none)'}")
    try:
        async with run.ctx.hosts().connect(run.name, run.target) as agent:
            run.rebind(agent)
            with run.phase("rollback"):
                outcome = await _roll_back_after_cut(run, failed, fallback, lost)
    except GatebotError as exc:
        back = f" --to {fallback}" if fallback else ""
        unlock = (
            f"gatebot unlock --target {run.name} --owner {run.lock_run_id} (if its lock is "
            "left), then "
            if run.lock_run_id
            else ""
        )
        raise TransportError(
            f"{lost}. Rolling back over a fresh connection failed too ({exc.message}): "
            f"`current` may still point at {failed}, which was never restarted or audited",
            hint=f"when the host is reachable: {unlock}gatebot rollback --target {run.name}{back}",
        ) from None
    raise TransportError(f"{lost}. {outcome}")


async def _roll_back_after_cut(run: HostRun, failed: str, fallback: str | None, lost: str) -> str:
    """The rollback half of `recover_after_cut`, on a fresh connection; returns what it did.
    Idempotent: the cut may have come before the rename, or in the middle of auto_rollback."""
    state = await read_state(run.agent, run.layout)
    reason = f"the connection was lost after the switch ({lost})"
    if fallback is None or fallback == failed:
        if state.live == failed:
            if failed not in state.bad:
                await run.log("bad", release=failed, ok=False, detail=reason)
            run.recovery = Recovery(failed, failed, False)
            return (
                f"There is no earlier good release to roll back to: {failed} stays live, "
                "never restarted or audited, and is marked bad"
            )
        run.live = state.live
        return f"`current` was not switched: {state.live or 'nothing'} is live"
    # The failed release was live (possibly only for a moment) unless the cut came before the
    # rename; a rollback that had already begun restarted into the fallback.
    began = run.recovery is not None and run.recovery.rolled_back
    was_live = state.live != fallback or began
    if state.live != fallback:
        await switch_current(run.agent, run.layout, fallback)
        await run.log("rollback", release=fallback, previous=failed, detail=reason)
    if was_live and failed not in state.bad:
        await run.log("bad", release=failed, ok=False, detail=reason)
    if not was_live:
        run.live = fallback
        return f"`current` was not switched: {fallback} is still live"
    run.live = fallback
    run.recovery = Recovery(failed, fallback, True)
    marker = state.markers.get(fallback)
    restart_note = ""
    if run.target.health is not None:
        restart_note = f"; {await after_rollback(run, failed, fallback)}"
    elif run.target.restart:
        try:
            await restart(run.agent, run.layout, run.target, fallback, marker.sha if marker else "")
            restart_note = ", restarted"
        except DeployFailed as exc:
            restart_note = f"; its restart failed: {exc.message}"
    restart_note += await _after_rollback_hooks(run)
    return (
        f"Rolled back over a fresh connection: {fallback} is live again{restart_note} (not "
        f"audited again); {failed} is marked bad"
    )


async def _after_rollback_hooks(run: HostRun) -> str:
    """The after_rollback hooks; a failure becomes part of the message, the rollback stands."""
    try:
        await run_hooks(run, "after_rollback")
    except GatebotError as exc:
        return f"; the after_rollback hook failed: {exc.message}"
    return ""
