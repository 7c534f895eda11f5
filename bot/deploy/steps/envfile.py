"""Step `env`: the environment file of the release that goes (or stays) live.

`deploy.targets.<name>.env` names the variables: `secrets` are read from the runner's
environment (GitHub secrets passed to the step with `env:`), `vars` are plain values. The host
writes them to `<path>/.gatebot/env/<release>.env` (0600, in a 0700 directory) and links the
release's `env.file` to it, so each release keeps the environment it ran with and a rollback
brings it back. Values travel only inside the request on the deploy's channel (never on a
command line, so never in `ps`), are never printed, logged or reported: the log, the report
and the job summary name the variables that were added, removed or changed, nothing more.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from bot.deploy.context import DeployContext
from bot.deploy.host.base import AgentError
from bot.deploy.hostside.protocol import WriteEnv
from bot.deploy.steps.base import HostRun
from bot.errors import ConfigError, DeployFailed

#: Values shorter than this are not masked in output (they would mask ordinary words).
MASK_MIN = 4


def env_entries(ctx: DeployContext, name: str) -> dict[str, str]:
    """The variables of target `name`'s env file; ConfigError naming the missing secrets."""
    env = ctx.target(name).env
    if env is None:
        return {}
    missing = [s for s in env.secrets if not ctx.env.get(s)]
    if missing:
        raise ConfigError(
            f"deploy.targets.{name}.env.secrets: not set in the environment: {', '.join(missing)}",
            hint="pass each secret to the deploy step, e.g. env: {NAME: ${{ secrets.NAME }}}",
        )
    bad = [s for s in env.secrets if "\0" in ctx.env[s]]
    if bad:
        raise ConfigError(f"deploy.targets.{name}.env.secrets: a NUL byte in {', '.join(bad)}")
    return {**env.vars, **{s: ctx.env[s] for s in env.secrets}}


def check_sources(ctx: DeployContext, names: list[str]) -> None:
    """Every secret every target needs is there, before any host is touched."""
    for name in names:
        env_entries(ctx, name)


def masker(ctx: DeployContext, name: str) -> Callable[[str], str]:
    """Hides the values of target `name`'s secrets in a text (a hook's output, say)."""
    env = ctx.target(name).env
    values = sorted(
        {ctx.env[s] for s in (env.secrets if env else []) if len(ctx.env.get(s, "")) >= MASK_MIN},
        key=len,
        reverse=True,
    )

    def mask(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return mask


def describe(added: list[str], removed: list[str], changed: list[str]) -> str:
    parts = [
        f"{what}: {', '.join(names)}"
        for what, names in (("added", added), ("removed", removed), ("changed", changed))
        if names
    ]
    return "; ".join(parts) or "unchanged"


async def write(run: HostRun) -> None:
    env = run.target.env
    assert env is not None and run.plan is not None
    release = run.plan.release
    layout = run.layout
    path = layout.env_file(release)
    link = posixpath.join(layout.release(release), env.file)
    # Compared with what the live release ran with (for a redeploy: the same file, rewritten).
    previous = layout.env_file(run.plan.previous) if run.plan.previous else None
    request = WriteEnv(
        path=path,
        entries=env_entries(run.ctx, run.name),
        header=f"gatebot: the environment of release {release}; a deploy rewrites it",
        previous=previous,
        link=link,
        link_target=posixpath.relpath(path, posixpath.dirname(link)),
    )
    with run.phase("env"):
        try:
            written = await run.agent.write_env(request)
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: writing the env file failed: {exc}") from None
    run.env_written = written
    change = describe(written.added, written.removed, written.changed)
    run.say(f"env file {env.file}: {len(request.entries)} variables ({change})")
    await run.log("env", release=release, detail=change)
