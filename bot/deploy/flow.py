"""The deploy orchestrator: the steps of each operation, run on each host, rolled out.

    DEPLOY:   plan → build (with env) → env → start → switch → restart → verify → stop_old → retain
              → prepare_next
    ROLLBACK: plan → start → switch → restart → verify → stop_old → prepare_next
              (then the after_rollback hooks)

`env` runs when the target has an env file; `start` and `stop_old` in health-gated mode
(`health`), `restart` otherwise (steps/health.py).

Each step is a module of bot/deploy/steps/ with its inputs and result on the `HostRun`; a step
that does not apply to a run is skipped (`Step.when`). Hook points `before_<step>` and
`after_<step>` (and `after_rollback`) run the context's hooks. From the switch until the audit
passed, a failed restart or audit rolls back by itself (steps/recover.py), and so does a link
lost after the switch was asked for, over a fresh connection. Anything failing before the
switch leaves `current` untouched.

Per host: connect (the Connector seam: SSH or in memory), take the deploy lock, run the steps,
let go of the lock, build the report from the step results, record it in the run history.
Hosts are rolled out by bot/deploy/rollout.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.deploy import history
from bot.deploy.admin import ReleaseRow, list_releases, unlock
from bot.deploy.context import DeployContext, resolve_targets
from bot.deploy.manifest import Manifest
from bot.deploy.manifest_job import ManifestJob
from bot.deploy.report import HostReport, RolloutReport, host_report
from bot.deploy.rollout import raise_for_failures, rollout
from bot.deploy.state import read_state
from bot.deploy.steps import build, dryrun, envfile, golive, health, hooks, plan, recover, retain
from bot.deploy.steps.base import HostRun, Step, check_hooks, run_hooks, run_steps
from bot.errors import GatebotError, TransportError, UsageError

__all__ = [
    "DEPLOY_STEPS",
    "ROLLBACK_STEPS",
    "DeployContext",
    "HostReport",
    "ReleaseRow",
    "RolloutReport",
    "deploy",
    "list_releases",
    "raise_for_failures",
    "resolve_targets",
    "rollback",
    "unlock",
]


def _kind(*kinds: str) -> Callable[[HostRun], bool]:
    return lambda run: run.plan is not None and run.plan.kind in kinds


def _with(setting: str, *kinds: str) -> Callable[[HostRun], bool]:
    """The run is of one of `kinds` and its target sets `setting` (env, health)."""
    of_kind = _kind(*kinds)
    return lambda run: of_kind(run) and getattr(run.target, setting) is not None


_GOES_LIVE = ("already-live", "reuse", "build", "rollback")
DEPLOY_STEPS: tuple[Step, ...] = (
    Step("plan", plan.plan_deploy),
    Step("build", build.build, _kind("build")),
    Step("env", envfile.write, _with("env", "already-live", "reuse")),  # build: in the build
    Step("start", health.start, _with("health", "already-live", "reuse", "build")),
    Step("switch", golive.switch, _kind("reuse", "build")),
    Step("restart", golive.restart_live, _kind(*_GOES_LIVE)),
    Step("verify", golive.verify, _kind(*_GOES_LIVE)),
    Step("stop_old", health.stop_old, _with("health", "reuse", "build")),
    Step("retain", retain.retain, _kind("build")),
    Step("prepare_next", retain.prepare),
)
ROLLBACK_STEPS: tuple[Step, ...] = (
    Step("plan", plan.plan_rollback),
    Step("start", health.start, _with("health", "rollback")),
    Step("switch", golive.switch, _kind("rollback")),
    Step("restart", golive.restart_live, _kind("rollback")),
    Step("verify", golive.verify, _kind("rollback")),
    Step("stop_old", health.stop_old, _with("health", "rollback")),
    Step("prepare_next", retain.prepare),
)
DRY_RUN_STEPS: tuple[Step, ...] = (Step("dry_run", dryrun.dry_run),)
EXTRA_HOOKS = ("after_rollback",)


async def _guarded(run: HostRun, steps: Sequence[Step]) -> None:
    """The steps, with recovery once the release may be live."""
    try:
        try:
            await run_steps(run, steps)
            if run.op == "rollback" and run.plan is not None and run.plan.kind == "rollback":
                await run_hooks(run, "after_rollback")
        except golive.Misbehaved as bad:
            assert run.plan is not None
            await recover.auto_rollback(run, run.plan.release, run.plan.fallback, bad.reason)
    except TransportError as exc:
        if not run.switch_asked or run.plan is None:
            await _stop_candidate(run)
            raise
        await recover.recover_after_cut(run, run.plan.release, run.plan.fallback, exc)
    except GatebotError:
        await _stop_candidate(run)
        raise


async def _stop_candidate(run: HostRun) -> None:
    """A release started beside the live one and never switched to is stopped (best effort:
    the first error is the one reported)."""
    try:
        await health.stop_candidate(run)
    except GatebotError as exc:
        run.notes.append(f"the started release could not be stopped: {exc}")


async def _locked(run: HostRun, steps: Sequence[Step]) -> None:
    with run.phase("lock"):
        lock = run.lock()
        await lock.acquire()
        run.lock_run_id = lock.owner.run_id
    try:
        await _guarded(run, steps)
    except BaseException:
        # Cancelled (SIGINT/SIGTERM) or failed: let go, but keep the first error.
        try:
            await lock.release()
        except GatebotError as exc:
            run.notes.append(f"the lock could not be released: {exc}")
        raise
    await lock.release()


async def on_host(
    ctx: DeployContext,
    name: str,
    make: Callable[[HostRun], Awaitable[None]],
    steps: Sequence[Step],
    *,
    op: str,
    locked: bool = True,
) -> HostReport:
    """Connect, `make` the run's inputs (not yet locked), run `steps` under the deploy lock
    (or without it), then report and record."""
    start = time.monotonic()
    error: GatebotError | None = None
    run: HostRun | None = None
    try:
        target = ctx.target(name)
        async with ctx.hosts().connect(name, target) as agent:
            run = HostRun(ctx, name, agent, "rollback" if op == "rollback" else "deploy")
            run.notes.extend(agent.connect_notes)
            run.hooks = hooks.with_configured(ctx.hooks)
            run.dry_run = not locked
            await make(run)
            await (_locked(run, steps) if locked else _guarded(run, steps))
    except GatebotError as exc:
        error = exc
        ctx.reporter.line(name, f"FAILED: {exc}")
    if run is None:
        report = HostReport(target=name, op="rollback" if op == "rollback" else "deploy")
        assert error is not None
        report.error, report.error_type = str(error), type(error).__name__
        report.exit_code = error.exit_code
        report.duration_s = round(time.monotonic() - start, 4)
    else:
        report = host_report(run, error, time.monotonic() - start)
    history.record(ctx, report)
    return report


async def deploy(
    ctx: DeployContext,
    names: list[str],
    manifest: Manifest | Callable[[], Manifest] | ManifestJob,
    *,
    dry_run: bool = False,
) -> RolloutReport:
    """Release `manifest` to `names`. Given a function that builds it instead, the function
    runs in a thread while the hosts are connected to (reading a 10,000-file tree from git
    takes about as long as opening the SSH connection and starting the host helper); a host
    takes its lock only once the manifest is there, and an error building it fails the hosts
    without touching them. Given a ManifestJob (read by a child process), a host is planned
    from the commit's id at once, and a redeploy of its live commit never waits for the
    manifest."""
    steps = DRY_RUN_STEPS if dry_run else DEPLOY_STEPS
    check_hooks(list(ctx.hooks), steps, EXTRA_HOOKS)
    if not dry_run:
        envfile.check_sources(ctx, names)  # a missing secret fails before any host is touched
    sha: str | None = None
    if isinstance(manifest, Manifest):
        job: asyncio.Future[Manifest] = asyncio.get_running_loop().create_future()
        job.set_result(manifest)
    elif isinstance(manifest, ManifestJob):
        sha = manifest.sha()  # an unknown ref: a usage error before any host is touched
        job = asyncio.ensure_future(asyncio.to_thread(manifest.manifest))
    else:
        job = asyncio.ensure_future(asyncio.to_thread(manifest))

    async def resolve(run: HostRun) -> None:
        if sha is None:
            run.manifest = await job
        else:
            assert isinstance(manifest, ManifestJob)
            run.sha, run.ref, run.manifest_future = sha, manifest.ref, job
            # Unless the commit is live already (a redeploy, which needs no manifest), the
            # manifest comes before the lock: a tree that cannot be deployed never touches
            # the host. The state is read again under the lock (steps/plan.py).
            state = await read_state(run.agent, run.layout)
            if state.live_marker is None or state.live_marker.sha != sha:
                await run.need_manifest()

    async def one(name: str) -> HostReport:
        return await on_host(ctx, name, resolve, steps, op="deploy", locked=not dry_run)

    try:
        reports = await rollout(names, one, ctx.config.deploy.rollout, ctx.reporter, "deploy")
    finally:
        if not job.done():
            if isinstance(manifest, ManifestJob):
                manifest.cancel()
            job.cancel()  # no host got as far as needing it (or the run was cancelled)
        await ctx.close_hosts()
    if job.done() and not job.cancelled() and job.exception() is None:
        built = job.result()
        for r in reports:  # hosts that failed before reading it, or that the rollout skipped
            r.ref, r.sha = r.ref or built.ref, r.sha or built.sha
    return RolloutReport(op="deploy", ok=all(r.ok for r in reports), hosts=reports)


async def rollback(ctx: DeployContext, names: list[str], to: str | None) -> RolloutReport:
    if to is not None and len(names) > 1:
        raise UsageError("--to names a release of one host; roll back one target at a time")
    check_hooks(list(ctx.hooks), ROLLBACK_STEPS, EXTRA_HOOKS)

    async def target(run: HostRun) -> None:
        run.to = to

    async def one(name: str) -> HostReport:
        return await on_host(ctx, name, target, ROLLBACK_STEPS, op="rollback")

    try:
        reports = await rollout(names, one, ctx.config.deploy.rollout, ctx.reporter, "rollback")
    finally:
        await ctx.close_hosts()
    return RolloutReport(op="rollback", ok=all(r.ok for r in reports), hosts=reports)
