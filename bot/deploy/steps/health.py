"""Steps `start` and `stop_old`: the health-gated switch (`deploy.targets.<name>.health`).

    start     run the release's `health.start` beside the live one (its own port or socket),
              check it every `interval_s` until healthy or `timeout_s`. Never healthy: it is
              stopped, a release built by this deploy is removed, the release is marked bad,
              and the deploy fails before `current` moves.
    (switch)  `current` moves only once the new release is healthy
    stop_old  after the audit passed, the release that was live is stopped (`health.stop`, or
              SIGTERM / SIGKILL to the process group gatebot started for it)

Until `stop_old` the old release keeps running, so a failed audit (or after_switch hook) rolls
back to a process that never stopped (steps/recover.py). A redeploy of the live sha makes sure
its process runs and is healthy (starting it if it is not), without a switch.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from bot.config.lifecycle import HealthConfig
from bot.deploy.host.base import AgentError
from bot.deploy.hostside.protocol import StartService, StopService, WaitHealthy
from bot.deploy.steps.base import HostRun
from bot.deploy.steps.envfile import masker
from bot.deploy.steps.hooks import drop_release, env_file_of
from bot.errors import DeployFailed

#: sun_path holds 108 bytes on Linux, 104 on the BSDs and macOS.
SOCKET_PATH_MAX = 104


def _health(run: HostRun) -> HealthConfig:
    cfg = run.target.health
    assert cfg is not None
    return cfg


def _env(run: HostRun, release: str) -> dict[str, str]:
    return {
        "GATEBOT_TARGET": run.name,
        "GATEBOT_PATH": run.layout.root,
        "GATEBOT_RELEASE": release,
        "GATEBOT_RELEASE_DIR": run.layout.release(release),
    }


def _check(run: HostRun, release: str) -> tuple[str, str, str | None, dict[str, Any] | None]:
    """(kind, target, probe source, probe config) of the configured check."""
    check = _health(run).check
    if check.http is not None:
        return "http", check.http, None, None
    if check.tcp:
        return "tcp", "", None, None
    if check.command is not None:
        return "command", check.command, None, None
    from bot.audit import gtw_probe  # standard library only: cheap

    source = Path(gtw_probe.__file__).read_text(encoding="utf-8")
    deadline = min(10.0, _health(run).timeout_s)
    if check.zmq is not None:
        config = {
            "endpoint": check.zmq.endpoint,
            "request": check.zmq.request,
            "expect": check.zmq.expect,
            "pings": 1,
            "timeout_ms": 1000,
            "retries": 1,
            "deadline_s": deadline,
        }
        return "probe", "zmq", source, config
    gtw = run.ctx.config.audit.gtw
    if gtw is None:
        raise DeployFailed(f"{run.name}: health.check.gtw needs audit.gtw (the GTW endpoint)")
    config = {
        "endpoint": gtw.endpoint,
        "socket": gtw.socket,
        "request": gtw.request,
        "expect": gtw.expect,
        "pings": 1,
        "timeout_ms": gtw.timeout_ms,
        "retries": 1,
        "deadline_s": deadline,
    }
    return "probe", "gtw", source, config


def start_request(run: HostRun, release: str) -> StartService:
    cfg = _health(run)
    release_dir = run.layout.release(release)
    return StartService(
        release=release,
        cwd=release_dir,
        command=cfg.start,
        env=_env(run, release),
        env_file=env_file_of(run, release),
        run_dir=run.layout.run_dir,
        ports=list(cfg.ports),
        socket=posixpath.join(release_dir, cfg.socket) if cfg.socket else None,
    )


async def stop_release(run: HostRun, release: str) -> str:
    """Stop the process of `release` (best effort); what happened, for a note or a line."""
    cfg = _health(run)
    request = StopService(
        release=release,
        run_dir=run.layout.run_dir,
        command=cfg.stop,
        cwd=run.layout.release(release),
        env=_env(run, release),
        env_file=env_file_of(run, release),
        timeout=cfg.stop_timeout_s,
    )
    try:
        stopped = await run.agent.stop_service(request)
    except AgentError as exc:
        return f"stopping {release} failed: {exc}"
    await run.log("stop", release=release, ok=True, detail=stopped.detail)
    return f"{release}: {stopped.detail}"


async def start(run: HostRun) -> None:
    assert run.plan is not None
    cfg, plan = _health(run), run.plan
    release = plan.release
    release_dir = run.layout.release(release)
    request = start_request(run, release)
    socket = request.socket
    if socket is not None and len(socket.encode()) > SOCKET_PATH_MAX:
        raise DeployFailed(
            f"{run.name}: the socket path {socket} is longer than a Unix socket allows "
            f"({SOCKET_PATH_MAX} bytes)",
            hint="a shorter deploy.targets.<name>.path or health.socket",
        )
    with run.phase("start"):
        try:
            service = await run.agent.start_service(request)
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: starting {release} failed: {exc}") from None
    run.service = service
    where = f"port {service.port}" if service.port else (f"socket {socket}" if socket else "")
    verb = "is running" if service.already else "started"
    run.say(f"{release} {verb} (pid {service.pid}{', ' + where if where else ''})")
    kind, target, probe, probe_config = _check(run, release)
    python = posixpath.join(release_dir, ".venv", "bin", "python")
    mask = masker(run.ctx, run.name)
    wait = WaitHealthy(
        release=release,
        run_dir=run.layout.run_dir,
        kind=kind,
        target=target,
        cwd=release_dir,
        env=_env(run, release),
        env_file=env_file_of(run, release),
        python=python,
        probe=probe,
        probe_config=probe_config,
        timeout=cfg.timeout_s,
        interval=cfg.interval_s,
    )
    with run.phase("health"):
        try:
            health = await run.agent.wait_healthy(wait, lambda line: run.say(f"health | {line}"))
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: checking {release}'s health failed: {exc}") from None
    detail = mask(health.detail)
    run.health = health._replace(detail=detail, log=mask(health.log))
    await run.log(
        "health",
        release=release,
        ok=health.healthy,
        detail=f"{detail} after {health.attempts} checks in {health.seconds:.1f}s",
    )
    if health.healthy:
        run.say(f"{release} is healthy after {health.seconds:.1f}s ({detail})")
        return
    await _never_healthy(run, release, detail, run.health.log)


async def _never_healthy(run: HostRun, release: str, detail: str, log: str) -> None:
    assert run.plan is not None
    plan, cfg = run.plan, _health(run)
    if plan.kind == "already-live":
        raise DeployFailed(
            f"{run.name}: the live release {release} is not healthy: {detail}"
            + (f"\n{log.strip()[-600:]}" if log.strip() else "")
        )
    stopped = await stop_release(run, release)
    run.notes.append(stopped)
    if plan.kind in ("build", "reuse"):
        await run.log("bad", release=release, ok=False, detail=f"never healthy: {detail}")
    if plan.kind == "build":
        await drop_release(run, release)
    live = f"{plan.previous} stays live" if plan.previous else "nothing is live"
    raise DeployFailed(
        f"{run.name}: {release} never got healthy within {cfg.timeout_s:g}s ({detail}); it was "
        f"stopped and never switched to: {live}"
        + (f"\nits output:\n{log.strip()[-600:]}" if log.strip() else "")
    )


async def stop_old(run: HostRun) -> None:
    """After the new release passed its audit: stop the one that was live before."""
    assert run.plan is not None
    old = run.plan.previous
    if old is None or old == run.plan.release:
        return
    with run.phase("stop_old"):
        said = await stop_release(run, old)
    run.stopped = old
    run.say(f"stopped the previous release {said}")


async def stop_candidate(run: HostRun) -> None:
    """A run that fails after starting a release and before `current` moved: stop it."""
    if run.service is None or run.service.already or run.plan is None or run.switch_asked:
        return
    run.notes.append(await stop_release(run, run.plan.release))


async def after_rollback(run: HostRun, failed: str, fallback: str) -> str:
    """Health mode, `current` back on `fallback`: stop `failed`; `fallback` normally never
    stopped (stop_old runs after the audit), else it is started again. A note, never raises."""
    notes = [await stop_release(run, failed)]
    try:
        again = await run.agent.start_service(start_request(run, fallback))
    except AgentError as exc:
        notes.append(f"starting {fallback} again failed: {exc}")
    else:
        if not again.already:
            notes.append(f"{fallback} was not running: started again (pid {again.pid})")
    return "; ".join(notes)
