"""Dependencies: one virtualenv per lock-file hash under `<path>/venvs/`, linked as `.venv`.

A venv is built only when its hash is new or a previous build was cut short (no
`.gatebot-complete` inside): `<python> -m venv <venv_args> DIR`, then the target's `install`
command runs inside the release with the venv's bin first on PATH and VIRTUAL_ENV set. The
`python -m venv` part needs nothing of the release, so the build step starts it on the host
before the upload (`start_venv`) and it runs while the files arrive; the install needs the
release's files and runs after them. A release with an unchanged lock file installs nothing,
and a rollback gets back exactly its own venv. The host side is `op_start_venv` and
`op_build_venv` in bot/deploy/hostside/procs.py.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import BuildVenv, Link, StartVenv
from bot.deploy.layout import VENV_LINK, RemoteLayout, venv_link_target
from bot.errors import DeployFailed


@dataclass(frozen=True)
class VenvResult:
    lock_hash: str
    created: bool  # False: an existing complete venv was reused


async def start_venv(
    agent: HostAgent, layout: RemoteLayout, target: TargetConfig, lock_hash: str
) -> bool:
    """Have the host create the venv of `lock_hash` in the background; `ensure_venv` then
    waits for it and runs the install. False when the host could not start it: `ensure_venv`
    then creates it itself, and reports what fails."""
    try:
        res = await agent.start_venv(
            StartVenv(
                python=target.python,
                venv_args=shlex.split(target.venv_args),
                venv_dir=layout.venv(lock_hash),
                timeout=target.install_timeout_s,
            )
        )
    except AgentError:
        return False
    return res.started


async def ensure_venv(
    agent: HostAgent,
    layout: RemoteLayout,
    target: TargetConfig,
    lock_hash: str,
    release_dir: str,
    *,
    complete: bool,
) -> VenvResult:
    """Link `<release>/.venv` to the venv of `lock_hash`, building it first unless `complete`."""
    name = agent.name
    try:
        link = posixpath.join(release_dir, VENV_LINK)
        await agent.link(Link(link, venv_link_target(lock_hash), None))
        if complete:
            return VenvResult(lock_hash, created=False)
        res = await agent.build_venv(
            BuildVenv(
                python=target.python,
                venv_args=shlex.split(target.venv_args),
                venv_dir=layout.venv(lock_hash),
                release_dir=release_dir,
                install=target.install or "",
                timeout=target.install_timeout_s,
            )
        )
    except AgentError as exc:
        raise DeployFailed(f"{name}: preparing the venv failed: {exc}; nothing went live") from None
    if res.status != 0:
        raise DeployFailed(
            f"{name}: installing dependencies failed ({res.status}); nothing went live\n"
            f"{res.output.strip()[-800:]}",
            hint=f"the install command was: {target.install}",
        )
    return VenvResult(lock_hash, created=True)
