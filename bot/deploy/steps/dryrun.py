"""Step `dry_run`: what a deploy would send, delete and reuse; nothing changes on the host."""

from __future__ import annotations

from bot.deploy.steps.base import HostRun
from bot.deploy.steps.build import linked_of, old_entries
from bot.deploy.steps.plan import read
from bot.deploy.transfer import plan_transfer


async def dry_run(run: HostRun) -> None:
    manifest = await run.need_manifest()
    state = await read(run)
    if state.live_marker is not None and state.live_marker.sha == manifest.sha:
        run.say(f"dry run: {manifest.sha[:7]} is already live as {state.live}; nothing to send")
        return
    shared = linked_of(run)
    deployed = manifest.without(shared)
    old = None
    if state.live is not None and state.live_marker is not None:
        old = await old_entries(run, state, run.layout.release(state.live), deployed, shared)
    plan = plan_transfer(deployed, old)
    run.counts.files_reused = plan.reused_files
    run.counts.bytes_reused = plan.reused_bytes
    run.say(
        f"dry run: would send {len(plan.send)} files ({plan.send_bytes} bytes), delete "
        f"{len(plan.delete)}, reuse {plan.reused_files} ({plan.reused_bytes} bytes)"
    )
    for e in plan.send[:50]:
        run.say(f"  send {e.path} ({e.size} bytes)")
    for p in plan.delete[:50]:
        run.say(f"  delete {p}")
