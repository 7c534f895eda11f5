"""Configured hooks (`deploy.hooks`, `deploy.targets.<name>.hooks`): commands run on the host at
the deploy's hook points, as Hooks of the step runner (bot/deploy/steps/base.py).

Where each runs, and what its failure does (docs/deploy.md, "Hooks"):

    before_build    the target's path      the deploy fails; nothing was built
    after_build     the new release        the release is removed; nothing goes live
    before_switch   the release to go live `current` does not move (a started release is stopped)
    after_switch    the release now live   rolled back like a failed restart (steps/recover.py)
    after_rollback  the release now live   the rollback reports it; `current` stays

Each command runs with its timeout, in the release's environment (the env file, when one is
configured) plus GATEBOT_* variables; its output is streamed to the log as it comes, with the
values of the target's secrets masked, recorded in the report and the deploy log.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.config.lifecycle import HOOK_POINTS, HookCommand
from bot.deploy.context import Hook
from bot.deploy.host.base import AgentError
from bot.deploy.hostside.protocol import Command, CommandAnswer, Remove
from bot.deploy.steps.base import HostRun
from bot.deploy.steps.envfile import masker
from bot.deploy.steps.golive import Misbehaved
from bot.errors import DeployFailed


@dataclass(frozen=True)
class HookRun:
    point: str
    command: str
    status: int
    seconds: float
    output: str  # the tail, secrets masked


class HookFailed(DeployFailed):
    """A configured hook failed (non-zero exit, timeout, or it could not run)."""


def hook_cwd(run: HostRun, point: str) -> str:
    if point == "before_build" or run.plan is None:
        return run.layout.root
    if point == "after_rollback" and run.live is not None:
        return run.layout.release(run.live)
    return run.layout.release(run.plan.release)


def hook_release(run: HostRun, point: str) -> str | None:
    if point == "after_rollback":
        return run.live
    return run.plan.release if run.plan is not None else None


def hook_env(run: HostRun, point: str) -> dict[str, str]:
    """GATEBOT_* for a hook: what runs, where, and what was live before."""
    plan = run.plan
    release = hook_release(run, point) or ""
    env = {
        "GATEBOT_HOOK": point,
        "GATEBOT_OP": run.op,
        "GATEBOT_TARGET": run.name,
        "GATEBOT_PATH": run.layout.root,
        "GATEBOT_RELEASE": release,
        "GATEBOT_RELEASE_DIR": run.layout.release(release) if release else "",
        "GATEBOT_SHA": plan.sha if plan is not None else "",
        "GATEBOT_PREVIOUS": (plan.previous or "") if plan is not None else "",
    }
    if run.service is not None and point in ("before_switch", "after_switch"):
        if run.service.port is not None:
            env["GATEBOT_PORT"] = str(run.service.port)
        if run.service.socket:
            env["GATEBOT_SOCKET"] = run.service.socket
    return env


def env_file_of(run: HostRun, release: str | None) -> str | None:
    if run.target.env is None or not release:
        return None
    return run.layout.env_file(release)


async def run_command_hook(run: HostRun, point: str, hook: HookCommand) -> HookRun:
    """Run one configured hook; its output goes to the log line by line, masked."""
    mask = masker(run.ctx, run.name)
    release = hook_release(run, point)
    # before_build runs before the new release (and its env file) exists.
    env_file = None if point == "before_build" else env_file_of(run, release)
    run.say(f"{point}: {mask(hook.run)}")

    def out(line: str) -> None:
        run.say(f"{point} | {mask(line)}")

    request = Command(
        hook.run, hook_cwd(run, point), hook_env(run, point), env_file, hook.timeout_s
    )
    start = time.monotonic()
    try:
        with run.phase(f"hook {point}"):
            res = await run.agent.command(request, out)
    except AgentError as exc:
        res = CommandAnswer(127, f"the hook could not run: {exc}")
    took = time.monotonic() - start
    result = HookRun(point, mask(hook.run), res.status, round(took, 3), mask(res.output)[-2000:])
    run.hooks_ran.append(result)
    verdict = "ok" if res.status == 0 else f"exited {res.status}"
    await run.log(
        "hook",
        release=release,
        ok=res.status == 0,
        detail=f"{point}: {result.command[:200]} {verdict} in {took:.1f}s",
    )
    return result


def failure(run: HostRun, result: HookRun) -> DeployFailed:
    last = result.output.strip().splitlines()[-1:] or [""]
    why = "timed out" if result.status == 124 else f"exited {result.status}"
    return HookFailed(
        f"{run.name}: the {result.point} hook `{result.command[:120]}` {why}"
        + (f": {last[0][-300:]}" if last[0] else "")
    )


def configured(point: str) -> Hook:
    """The Hook that runs `point`'s configured commands of the run's target, in order; the
    first that fails raises (Misbehaved for after_switch, so the run rolls back)."""

    async def hook(run: HostRun) -> None:
        commands = run.ctx.config.deploy.hooks_for(run.name).of(point)
        for command in commands:
            result = await run_command_hook(run, point, command)
            if result.status != 0:
                if point == "after_build" and run.plan is not None:
                    await drop_release(run, run.plan.release)
                err = failure(run, result)
                if point == "after_switch":
                    raise Misbehaved(err.message)
                raise err

    return hook


async def drop_release(run: HostRun, release: str) -> None:
    """Remove a release that never went live (and what belongs to it)."""
    try:
        await run.agent.remove(Remove(run.layout.owned_by(release)))
        run.say(f"removed {release}: it never went live")
    except AgentError as exc:
        run.notes.append(f"{release} stays on the host for retention to remove: {exc}")


def with_configured(hooks: Mapping[str, Sequence[Hook]]) -> dict[str, list[Hook]]:
    """`hooks` (in code) with each configurable point's configured commands run first."""
    out: dict[str, list[Hook]] = {k: list(v) for k, v in hooks.items()}
    for point in HOOK_POINTS:
        out[point] = [configured(point), *out.get(point, [])]
    return out
