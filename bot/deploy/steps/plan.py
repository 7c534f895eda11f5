"""Step `plan`: read the host's state and decide what this run does (the decision is pure,
`decide_deploy`; reusing an existing release first checks it on the host).

Deploy: the sha is live → restart and audit only (`already-live`); a complete, good release
holds the sha and still matches its tree → switch to it (`reuse`); otherwise a new release is
built (`build`). Rollback: the release asked for (`--to`), or the previous good one; one that
is live already is a no-op (`noop`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from bot.deploy.integrity import HashReuse, IntegrityResult, check_release
from bot.deploy.layout import check_release_id, integrity_excludes, make_release_id
from bot.deploy.state import RemoteState, read_state
from bot.deploy.steps.base import HostRun
from bot.errors import DeployFailed, UsageError

Kind = Literal["already-live", "reuse", "build", "rollback", "noop"]


@dataclass(frozen=True)
class Plan:
    kind: Kind
    state: RemoteState  # as read at the start, under the lock
    release: str  # the release that goes (or stays) live
    sha: str
    previous: str | None  # live before this run
    fallback: str | None  # where to go back to when `release` misbehaves once live


def decide_deploy(state: RemoteState, sha: str, now: datetime) -> Plan:
    """What a deploy of `sha` does on a host in `state` (a `reuse` is confirmed by a check)."""
    if state.current_kind == "other":
        raise DeployFailed("`current` exists but is not a symlink")
    live = state.live
    live_ok = live is not None and state.live_marker is not None and live not in state.bad
    fallback = live if live_ok else state.previous_good()
    if live is not None and state.live_marker is not None and state.live_marker.sha == sha:
        return Plan("already-live", state, live, sha, live, state.previous_good())
    reuse = state.release_of_sha(sha)
    if reuse is not None:
        marker = state.markers[reuse]
        if marker is not None and state.venvs.get(marker.lock_hash):
            return Plan("reuse", state, reuse, sha, live, fallback)
    release = make_release_id(sha, now, set(state.markers))
    return Plan("build", state, release, sha, live, fallback)


def hash_reuse(run: HostRun, seeded_from: str | None) -> HashReuse:
    """What the host may reuse when it checks a release built here (`deploy.<t>.verify`):
    with `index`, the ids of the files it wrote and those of the release the seed linked from;
    with `full`, nothing. The release's own index is recorded either way, for the next one."""
    if run.target.verify == "full":
        return HashReuse(record=True, written=False)
    trust = (run.layout.release_index(seeded_from),) if seeded_from else ()
    return HashReuse(trust=trust, record=True, written=True)


def count_hashing(run: HostRun, check: IntegrityResult) -> None:
    run.counts.files_hashed += check.hashed_files
    run.counts.bytes_hashed += check.hashed_bytes
    run.counts.files_hash_known += check.known_files


async def _still_intact(run: HostRun, release: str) -> bool:
    """Does the complete release `release` still hold its tree (nobody edited it)?"""
    assert run.manifest is not None
    with run.phase("verify"):
        # Its own index: files of a checked release, unchanged since, are not read again.
        own = dataclasses.replace(hash_reuse(run, release), record=False, written=False)
        check = await check_release(
            run.agent,
            run.layout.release(release),
            run.manifest,
            integrity_excludes(run.target.linked()),
            own,
        )
        count_hashing(run, check)
    if not check.ok:
        run.say(f"{release} was edited on the host ({check.summary()}): building anew")
    return check.ok


async def read(run: HostRun) -> RemoteState:
    with run.phase("state"):
        state = await read_state(run.agent, run.layout)
    run.live = state.live
    return state


async def plan_deploy(run: HostRun) -> None:
    state = await read(run)
    sha = run.sha or (await run.need_manifest()).sha
    try:
        plan = decide_deploy(state, sha, datetime.now(timezone.utc))
    except DeployFailed as exc:
        raise DeployFailed(f"{run.name}: {run.layout.current} exists but is not a symlink") from (
            exc
        )
    if plan.kind != "already-live":
        await run.need_manifest()  # a redeploy of the live commit never waits for it
    if plan.kind == "reuse" and not await _still_intact(run, plan.release):
        now = datetime.now(timezone.utc)
        plan = dataclasses.replace(
            plan, kind="build", release=make_release_id(sha, now, set(state.markers))
        )
    if plan.kind == "already-live":
        run.say(f"{sha[:7]} is already live as {plan.release}: no transfer")
    elif plan.kind == "reuse":
        run.say(f"{sha[:7]} is already on the host as {plan.release}: no transfer")
    run.plan = plan


def decide_rollback(state: RemoteState, to: str | None, name: str) -> Plan:
    """Which release a rollback puts live, or why it cannot."""
    live = state.live
    if to is not None:
        try:
            check_release_id(to)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if to not in state.markers:
            have = ", ".join(state.complete[-5:]) or "none"
            raise DeployFailed(f"{name}: no release {to} on the host (newest: {have})")
        if state.markers[to] is None:
            raise DeployFailed(f"{name}: release {to} is incomplete (a cut deploy)")
        if to in state.bad:
            raise DeployFailed(
                f"{name}: release {to} is marked bad in the deploy log",
                hint="deploy its commit again to make a fresh release",
            )
        chosen = to
    else:
        found = state.previous_good()
        if found is None:
            raise DeployFailed(f"{name}: no earlier good release to roll back to")
        chosen = found
    marker = state.markers[chosen]
    assert marker is not None
    if not state.venvs.get(marker.lock_hash):
        raise DeployFailed(
            f"{name}: the venv of {chosen} ({marker.lock_hash}) is gone or incomplete",
            hint="deploy its commit again instead",
        )
    live_ok = live is not None and state.live_marker is not None and live not in state.bad
    kind: Kind = "noop" if chosen == live else "rollback"
    return Plan(kind, state, chosen, marker.sha, live, live if live_ok else None)


async def plan_rollback(run: HostRun) -> None:
    state = await read(run)
    run.plan = decide_rollback(state, run.to, run.name)
    if run.plan.kind == "noop":
        run.say(f"{run.plan.release} is already live")
