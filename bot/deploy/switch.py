"""Going live: a temporary symlink renamed over `current` (rename(2) is atomic, so `current`
always exists and always points at a whole release), then the target's restart command.
The host side is `op_switch` / `op_shell` in bot/deploy/hostside/."""

from __future__ import annotations

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import Shell, Switch
from bot.deploy.layout import RemoteLayout, current_link_target
from bot.errors import DeployFailed


async def switch_current(agent: HostAgent, layout: RemoteLayout, release_id: str) -> None:
    try:
        await agent.switch(Switch(current_link_target(release_id), layout.current))
    except AgentError as exc:
        raise DeployFailed(
            f"{agent.name}: switching current to {release_id} failed: {exc}"
        ) from None


async def restart(
    agent: HostAgent, layout: RemoteLayout, target: TargetConfig, release_id: str, sha: str
) -> str | None:
    """Run the restart command in `current`; None when none is configured, else its output.
    Raises DeployFailed when it fails."""
    if not target.restart:
        return None
    try:
        res = await agent.shell(
            Shell(
                command=target.restart,
                cwd=layout.current + "/",
                env={"GATEBOT_RELEASE": release_id, "GATEBOT_SHA": sha},
                timeout=target.restart_timeout_s,
            )
        )
    except AgentError as exc:
        raise DeployFailed(f"{agent.name}: the restart command could not run: {exc}") from None
    if res.status != 0:
        raise DeployFailed(
            f"{agent.name}: the restart command failed ({res.status}) for "
            f"{release_id}: {res.output.strip()[-400:]}"
        )
    return res.output.strip()[-400:]
