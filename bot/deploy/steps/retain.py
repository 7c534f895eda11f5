"""Steps `retain` and `prepare_next`: after a release went live, prune what retention no longer
keeps (bot/deploy/retention.py decides), and have the host prepare the next release's seed in
the background (`deploy.<target>.prepare_next`)."""

from __future__ import annotations

from bot.deploy.layout import RELEASE_MANAGED
from bot.deploy.retention import apply_prune, plan_prune
from bot.deploy.state import read_state
from bot.deploy.steps.base import HostRun
from bot.deploy.steps.build import linked_of
from bot.deploy.transfer import prepare_next
from bot.errors import GatebotError


async def retain(run: HostRun) -> None:
    assert run.plan is not None
    state = await read_state(run.agent, run.layout)
    plan = plan_prune(
        state.markers,
        state.venvs,
        keep=run.target.keep_releases,
        live=state.live,
        previous_good=state.previous_good() or run.plan.fallback,
    )
    if plan.empty:
        return
    with run.phase("prune"):
        await apply_prune(run.agent, run.layout, plan)
        detail = (
            f"releases: {', '.join(plan.releases) or '-'}; venvs: {', '.join(plan.venvs) or '-'}"
        )
        await run.log("prune", detail=detail)
    run.pruned = plan
    run.say(f"pruned {len(plan.releases)} releases, {len(plan.venvs)} venvs")


async def prepare(run: HostRun) -> None:
    """Start the host preparing the next release's seed from the live one, so the next
    deploy does not link every file first. An optimisation: a failure is a note."""
    if not run.target.prepare_next or run.live is None:
        return
    try:
        await prepare_next(
            run.agent, run.layout.release(run.live), (*RELEASE_MANAGED, *linked_of(run))
        )
    except GatebotError as exc:
        run.notes.append(f"the next release's seed was not prepared: {exc}")
