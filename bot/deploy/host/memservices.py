"""The in-memory host's environment files and started processes (bot/deploy/host/memory.py):
what bot/deploy/hostside/envfile.py and services.py do on a real host, on a MemFS.

A started process is a `MemService`; whether it gets healthy is the host's `healthy(release)`;
its start command's answer (the host's `commands`, kind "start") decides whether it started.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.deploy.host.base import AgentError
from bot.deploy.host.memfs import File, MemFS, Symlink
from bot.deploy.hostside import protocol as p
from bot.deploy.hostside.envfile import diff_names, format_env, parse_env

CommandKind = Literal["install", "restart", "hook", "start", "health", "stop"]
#: Runs a command on the in-memory host: (kind, command, cwd, env) -> its answer.
Runner = Callable[[CommandKind, str, str, dict[str, str]], p.CommandAnswer]


@dataclass
class MemService:
    release: str
    port: int | None
    socket: str | None
    running: bool = True
    exited: int | None = None  # the start command failed with this status
    stops: int = 0


class MemHost(Protocol):
    """What these functions need of a MemoryHost (bot/deploy/host/memhost.py)."""

    @property
    def fs(self) -> MemFS: ...

    @property
    def services(self) -> dict[str, MemService]: ...

    @property
    def healthy(self) -> Callable[[str], bool]: ...


def env_of(fs: MemFS, path: str | None) -> dict[str, str]:
    text = fs.read_text(path) if path else None
    return parse_env(text) if text else {}


def write_env(fs: MemFS, req: p.WriteEnv) -> p.EnvWritten:
    try:
        before = env_of(fs, req.previous)
    except ValueError:
        before = {k: "\0" for k in req.entries}
    fs.mkdirs(posixpath.dirname(req.path))
    fs.remove(req.path)
    fs.put(req.path, File(format_env(req.entries, req.header).encode("utf-8"), mode=0o600))
    if req.link and req.link_target:
        fs.mkdirs(posixpath.dirname(req.link))
        fs.remove(req.link)
        fs.put(req.link, Symlink(req.link_target))
    return diff_names(before, req.entries)


def _record(host: MemHost, run_dir: str, svc: MemService) -> None:
    host.fs.mkdirs(run_dir)
    path = posixpath.join(run_dir, svc.release + ".json")
    host.fs.remove(path)
    data = {"release": svc.release, "port": svc.port, "socket": svc.socket}
    host.fs.put(path, File(json.dumps(data).encode("utf-8")))


def start_service(host: MemHost, req: p.StartService, run: Runner) -> p.ServiceStarted:
    svc = host.services.get(req.release)
    if svc is not None and svc.running:
        return p.ServiceStarted(1000, svc.port, svc.socket, True)
    taken = {s.port for r, s in host.services.items() if s.running and r != req.release}
    free = [port for port in req.ports if port not in taken]
    if req.ports and not free:
        raise AgentError(f"OSError: every configured port is held by another release: {req.ports}")
    port = free[0] if free else None
    env = {**env_of(host.fs, req.env_file), **req.env}
    if port is not None:
        env["GATEBOT_PORT"] = str(port)
    if req.socket:
        env["GATEBOT_SOCKET"] = req.socket
    res = run("start", req.command, req.cwd, env)
    svc = MemService(req.release, port, req.socket)
    if res.status != 0:
        svc.running, svc.exited = False, res.status
    host.services[req.release] = svc
    _record(host, req.run_dir, svc)
    return p.ServiceStarted(1000, port, req.socket, False)


def wait_healthy(host: MemHost, req: p.WaitHealthy, run: Runner) -> p.Health:
    svc = host.services.get(req.release)
    if svc is None or not svc.running:
        exited = svc.exited if svc is not None else None
        detail = (
            f"the start command exited with {exited} before the release was healthy"
            if exited
            else "not running"
        )
        return p.Health(False, 1, 0.0, detail, exited, "")
    if req.kind == "command":
        env = {**env_of(host.fs, req.env_file), **req.env}
        if run("health", req.target, req.cwd, env).status != 0:
            return p.Health(False, 1, req.timeout, "exit 1", None, "")
    if host.healthy(req.release):
        return p.Health(True, 1, 0.0, f"healthy: {req.kind}", None, "")
    return p.Health(False, 3, req.timeout, f"{req.kind}: not healthy", None, "(in memory)")


def stop_service(host: MemHost, req: p.StopService, run: Runner) -> p.ServiceStopped:
    svc = host.services.get(req.release)
    was = svc is not None and svc.running
    if req.command:
        env = {**env_of(host.fs, req.env_file), **req.env}
        res = run("stop", req.command, req.cwd, env)
        if res.status != 0:
            return p.ServiceStopped(False, f"the stop command failed ({res.status})")
    if svc is not None:
        svc.running = False
        svc.stops += 1
    host.fs.remove(posixpath.join(req.run_dir, req.release + ".json"))
    return p.ServiceStopped(was, "stopped" if was else f"no process of {req.release} was running")
