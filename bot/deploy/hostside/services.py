"""Host side: the health-gated switch. Start a release's process beside the live one, check it
until it is healthy, stop a release's process.

A started process runs in its own session (its own process group), its output appended to
`<run_dir>/<release>.log`, and is recorded in `<run_dir>/<release>.json` with its pid, the
port or socket it was given and its start time (so a pid the system reused is never taken for
it). Stopping signals the whole process group: SIGTERM, then SIGKILL.

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from bot.deploy.hostside.fsops import read_json_object, remove, write_text
from bot.deploy.hostside.procs import (
    ClientGone,
    client_gone,
    command_env,
    emit_output,
    run_streamed,
)
from bot.deploy.hostside.protocol import (
    Health,
    ServiceStarted,
    ServiceStopped,
    StartService,
    StopService,
    WaitHealthy,
)

#: Processes this host program started, by release: their exit status is read from here
#: (an exited child of ours stays a zombie, which `kill(pid, 0)` would call alive).
STARTED: Dict[str, "subprocess.Popen[bytes]"] = {}


def record_path(run_dir: str, release: str) -> str:
    return os.path.join(run_dir, release + ".json")


def log_path(run_dir: str, release: str) -> str:
    return os.path.join(run_dir, release + ".log")


def _stat(pid: int) -> Optional[List[str]]:
    """The fields of /proc/<pid>/stat after the command name (Linux); None elsewhere."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> Optional[str]:
    """When process `pid` started (Linux /proc), to tell it from a later one with its pid."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def running(release: str, record: Optional[Dict[str, Any]]) -> bool:
    """Is the recorded process of `release` still there (and still the same process)?"""
    proc = STARTED.get(release)
    if proc is not None:
        return proc.poll() is None
    if not record or not isinstance(record.get("pid"), int) or record["pid"] <= 1:
        return False
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours: never the process we started
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: the pid is there, trust it
    # A zombie has ended (its parent, or an init that does not reap, has not collected it).
    return fields[0] != "Z" and len(fields) > 19 and fields[19] == record.get("start_time")


def exit_status(release: str) -> Optional[int]:
    proc = STARTED.get(release)
    return None if proc is None else proc.poll()


def _taken_ports(run_dir: str, release: str) -> Set[int]:
    taken: Set[int] = set()
    if os.path.isdir(run_dir):
        for name in os.listdir(run_dir):
            other = name[: -len(".json")]
            if name.endswith(".json") and other != release:
                rec = read_json_object(os.path.join(run_dir, name))
                if rec is not None and running(other, rec) and isinstance(rec.get("port"), int):
                    taken.add(rec["port"])
    return taken


def op_start_service(req: StartService) -> ServiceStarted:
    os.makedirs(req.run_dir, mode=0o700, exist_ok=True)
    path = record_path(req.run_dir, req.release)
    rec = read_json_object(path)
    if rec is not None and running(req.release, rec):
        return ServiceStarted(rec["pid"], rec.get("port"), rec.get("socket"), True)
    taken = _taken_ports(req.run_dir, req.release)
    free = [p for p in req.ports if p not in taken]
    if req.ports and not free:
        raise OSError("every configured port is held by another release: %s" % req.ports)
    port = free[0] if free else None
    extra = dict(req.env)
    if port is not None:
        extra["GATEBOT_PORT"] = str(port)
    if req.socket:
        extra["GATEBOT_SOCKET"] = req.socket
        os.makedirs(os.path.dirname(req.socket), exist_ok=True)
        remove(req.socket)  # a socket left by a process that is gone
    env = command_env(extra, req.env_file)
    with open(log_path(req.run_dir, req.release), "ab") as log:
        proc = subprocess.Popen(
            ["sh", "-c", req.command],
            cwd=req.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    STARTED[req.release] = proc
    record = {
        "release": req.release,
        "pid": proc.pid,
        "start_time": start_time(proc.pid),
        "port": port,
        "socket": req.socket,
        "started_at": time.time(),
    }
    write_text(path, json.dumps(record), fsync=False)
    return ServiceStarted(proc.pid, port, req.socket, False)


def log_tail(run_dir: str, release: str, size: int = 2000) -> str:
    try:
        with open(log_path(run_dir, release), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _http(target: str, port: Optional[int], sock: Optional[str], wait: float) -> Tuple[bool, str]:
    import http.client  # imported here: a host program that does not need it starts faster
    import socket

    class UnixHTTPConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float) -> None:
            http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
            self.unix_path = path

        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            s.connect(self.unix_path)
            self.sock = s

    if target.startswith("/"):
        path = target
        if sock:
            conn: http.client.HTTPConnection = UnixHTTPConnection(sock, wait)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=wait)
    else:
        rest = target[len("http://") :]
        hostport, _, tail = rest.partition("/")
        path = "/" + tail
        conn = http.client.HTTPConnection(hostport, timeout=wait)
    try:
        conn.request("GET", path, headers={"User-Agent": "gatebot-health"})
        status = conn.getresponse().status
    except http.client.HTTPException as exc:
        return False, "%s: %s" % (type(exc).__name__, exc)
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, "HTTP %d" % status
    return False, "HTTP %d from %s" % (status, target)


def _tcp(port: Optional[int], sock: Optional[str], wait: float) -> Tuple[bool, str]:
    import socket

    if sock:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where: Any = sock
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        where = ("127.0.0.1", port)
    s.settimeout(wait)
    try:
        s.connect(where)
    finally:
        s.close()
    return True, "accepts connections"


def check_once(req: WaitHealthy, rec: Dict[str, Any], wait: float) -> Tuple[bool, str]:
    port, sock = rec.get("port"), rec.get("socket")
    target = req.target.replace("{port}", str(port)).replace("{socket}", str(sock or ""))
    extra = dict(req.env)
    if port is not None:
        extra["GATEBOT_PORT"] = str(port)
    if sock:
        extra["GATEBOT_SOCKET"] = sock
    try:
        if req.kind == "http":
            return _http(target, port, sock, wait)
        if req.kind == "tcp":
            return _tcp(port, sock, wait)
        env = command_env(extra, req.env_file)
        if req.kind == "command":
            res = run_streamed(["sh", "-c", target], req.cwd, env, wait, stream=False)
            return res.status == 0, "exit %d: %s" % (res.status, res.output.strip()[-300:])
        if req.kind == "probe":
            config = dict(req.probe_config or {})
            if isinstance(config.get("endpoint"), str):
                config["endpoint"] = (
                    config["endpoint"].replace("{port}", str(port)).replace("{socket}", sock or "")
                )
            argv = [req.python, "-", "gatebot-gtw-probe", json.dumps(config)]
            probe = (req.probe or "").encode("utf-8")
            res = run_streamed(argv, req.cwd, env, wait, stream=False, input=probe)
            lines = res.output.strip().splitlines()
            try:
                result = json.loads(lines[-1]) if lines else None
            except ValueError:
                result = None
            if not isinstance(result, dict):
                return False, "the probe did not run (%s)" % res.output.strip()[-300:]
            return bool(result.get("ok")), str(result.get("error") or "replied")
    except (OSError, ValueError) as exc:
        return False, "%s: %s" % (type(exc).__name__, exc)
    raise ValueError("unknown health check kind %r" % req.kind)


def op_wait_healthy(req: WaitHealthy) -> Health:
    rec = read_json_object(record_path(req.run_dir, req.release)) or {}
    start = time.monotonic()
    attempts = 0
    detail = "not checked"
    report_at = start + 5
    while True:
        attempts += 1
        status = exit_status(req.release)
        if status is not None and status != 0:
            return Health(
                False,
                attempts,
                time.monotonic() - start,
                "the start command exited with %d before the release was healthy" % status,
                status,
                log_tail(req.run_dir, req.release),
            )
        left = req.timeout - (time.monotonic() - start)
        ok, detail = check_once(req, rec, max(0.1, min(5.0, left)))
        if ok:
            return Health(True, attempts, time.monotonic() - start, "healthy: " + detail, None, "")
        if client_gone():
            raise ClientGone("the deploy went away while waiting for the release to be healthy")
        now = time.monotonic()
        if now - start >= req.timeout:
            return Health(
                False,
                attempts,
                now - start,
                detail,
                exit_status(req.release),
                log_tail(req.run_dir, req.release),
            )
        if now >= report_at:
            emit_output(
                "not healthy yet after %.0fs (%d checks): %s" % (now - start, attempts, detail)
            )
            report_at = now + 5
        time.sleep(max(0.0, min(req.interval, req.timeout - (now - start))))


def _wait_gone(release: str, rec: Dict[str, Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while running(release, rec):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def op_stop_service(req: StopService) -> ServiceStopped:
    path = record_path(req.run_dir, req.release)
    rec = read_json_object(path)
    was_running = rec is not None and running(req.release, rec)
    if req.command:
        extra = dict(req.env)
        if rec is not None and isinstance(rec.get("port"), int):
            extra["GATEBOT_PORT"] = str(rec["port"])
        res = run_streamed(
            ["sh", "-c", req.command],
            req.cwd,
            command_env(extra, req.env_file),
            req.timeout,
            stream=False,
        )
        if res.status != 0:
            return ServiceStopped(
                False, "the stop command failed (%d): %s" % (res.status, res.output.strip()[-300:])
            )
        if rec is not None:
            _wait_gone(req.release, rec, req.timeout)
        detail = "stopped by its stop command"
    elif rec is None or not was_running:
        remove(path)
        return ServiceStopped(False, "no process of %s was running" % req.release)
    else:
        pid = rec["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        if not _wait_gone(req.release, rec, req.timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(req.release, rec, 5)
            detail = "did not stop on SIGTERM within %ds: killed" % req.timeout
        else:
            detail = "stopped"
    proc = STARTED.pop(req.release, None)
    if proc is not None:
        proc.poll()
    remove(path)
    return ServiceStopped(was_running, detail)
