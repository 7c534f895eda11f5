"""Layers 8-9: the service runs, and Inf reaches the GTW over ZeroMQ within the RTT budget."""

from __future__ import annotations

import json
import posixpath
import shlex
from pathlib import Path
from typing import Any

from bot.audit import gtw_probe
from bot.audit.context import AuditContext, Outcome, failed, parse_json_line, passed, skipped
from bot.config.audit import GtwConfig
from bot.ssh.remote import RemoteTimeout, run_bounded, tail
from bot.ssh.session import quote

# Host interpreter: is the systemd unit active, the pid in a pid file alive, or a local port
# accepting connections. It polls for up to `wait` seconds: the audit runs right after the
# restart command, and a service needs a moment to come up.
SERVICE_SCRIPT = r"""
import errno, json, os, socket, subprocess, sys, time
mode, value, wait, user = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"

def systemd():
    cmd = ["systemctl"] + (["--user"] if user else []) + ["is-active", value]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "state": "", "error": "cannot run systemctl: %s" % exc}
    state = (p.stdout.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
    ok = p.returncode == 0 and state == "active"
    return {"ok": ok, "state": state, "error": None if ok else "systemd unit %s is %s" % (
        value, state or "unknown")}

def pidfile():
    try:
        with open(value) as fh:
            pid = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        return {"ok": False, "error": "cannot read a pid from %s: %s" % (value, exc)}
    try:
        os.kill(pid, 0)
        alive = True
    except OSError as exc:
        alive = exc.errno == errno.EPERM
    state = ""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = ""  # no /proc entry to read: judged by kill(0) alone
    ok = alive and state != "Z"
    return {"ok": ok, "pid": pid, "error": None if ok else "process %d is %s" % (
        pid, "a zombie" if state == "Z" else "not running")}

def port():
    try:
        socket.create_connection(("127.0.0.1", int(value)), timeout=2).close()
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": "nothing accepts connections on 127.0.0.1:%s (%s)" % (
            value, exc.strerror or exc)}

check = {"systemd": systemd, "pidfile": pidfile, "port": port}[mode]
start = time.time()
while True:
    out = check()
    if out["ok"] or time.time() - start >= wait:
        break
    time.sleep(0.2)
out["waited_s"] = round(time.time() - start, 2)
print(json.dumps(out))
"""


async def check_service(ctx: AuditContext) -> Outcome:
    svc = ctx.audit.service
    if svc is None:
        return skipped("no service configured (audit.service: port, systemd or pidfile)")
    if svc.systemd is not None:
        mode, value = "systemd", svc.systemd
    elif svc.pidfile is not None:
        mode, value = "pidfile", posixpath.join(ctx.target.path, svc.pidfile)
    else:
        mode, value = "port", str(svc.port)
    limit = ctx.timeout_of("service")
    wait = max(0.0, min(svc.wait_s, limit - 2))
    res = await run_bounded(
        ctx.ssh(),
        quote([ctx.target.python, "-", mode, value, f"{wait}", "1" if svc.systemd_user else "0"]),
        input=SERVICE_SCRIPT,
        timeout=limit,
    )
    facts = parse_json_line(res.stdout)
    if facts is None:
        why = tail(res.stderr) or f"exit {res.exit_status}"
        return failed(f"cannot check the service on the host: {why}")
    data = {k: facts[k] for k in ("pid", "state", "waited_s") if facts.get(k) is not None}
    if facts.get("ok"):
        if mode == "systemd":
            return passed(f"systemd unit {value} is active", **data)
        if mode == "pidfile":
            return passed(f"pid {facts.get('pid')} from {value} is running", **data)
        return passed(f"a service accepts connections on port {value} on the host", **data)
    waited = f" (waited {facts.get('waited_s')}s)" if wait else ""
    if mode == "systemd":
        scope = "--user " if svc.systemd_user else ""
        fix = f"start it (`systemctl {scope}start {value}`) and read `journalctl {scope}-u {value}`"
    else:
        restart = ctx.target.restart
        fix = f"restart it (`{restart}`)" if restart else "start the service"
    return failed(f"{facts.get('error')}{waited}; {fix}", **data)


def probe_config(gtw: GtwConfig, deadline_s: float) -> dict[str, Any]:
    return {
        "endpoint": gtw.endpoint,
        "socket": gtw.socket,
        "request": gtw.request,
        "expect": gtw.expect,
        "pings": gtw.pings,
        "timeout_ms": gtw.timeout_ms,
        "retries": gtw.retries,
        "deadline_s": deadline_s,
    }


def judge_probe(result: dict[str, Any], gtw: GtwConfig) -> Outcome:
    where = f"{gtw.endpoint} ({gtw.socket})"
    error = result.get("error")
    data: dict[str, Any] = {
        k: result.get(k)
        for k in ("replies", "pings", "p50_ms", "max_ms", "rtt_ms", "retries")
        if k in result
    }
    data["budget_ms"] = gtw.budget_ms
    if not result.get("ok"):
        if not result.get("connected", True):
            fix = "is the GTW up, and is the endpoint reachable from Inf (audit.gtw.endpoint)?"
        elif error and ("not JSON" in error or "unexpected reply" in error):
            fix = "the peer is not answering like the GTW: check audit.gtw.request/expect"
        else:
            fix = "the GTW accepted the connection but did not answer in time"
        return failed(f"GTW {where} from the host: {error}; {fix}", **data)
    p50, worst = float(result["p50_ms"]), float(result["max_ms"])
    figures = f"p50 {p50:.1f} ms, max {worst:.1f} ms over {result.get('replies')} pings"
    if p50 > gtw.budget_ms:
        return failed(
            f"GTW {where} answers too slowly: {figures}; p50 is above audit.gtw.budget_ms "
            f"{gtw.budget_ms:g} ms",
            **data,
        )
    if worst > gtw.max_budget_ms:
        return failed(
            f"GTW {where}: {figures}; the slowest round trip is above {gtw.max_budget_ms:g} ms "
            "(audit.gtw.max_ms)",
            **data,
        )
    retried = f", {result.get('retries')} retries" if result.get("retries") else ""
    return passed(
        f"GTW {where}: {result.get('replies')}/{gtw.pings} replies, {figures.split(' over')[0]} "
        f"(budget {gtw.budget_ms:g} ms){retried}",
        **data,
    )


def probe_source() -> str:
    return Path(gtw_probe.__file__).read_text(encoding="utf-8")


async def check_gtw(ctx: AuditContext) -> Outcome:
    gtw = ctx.audit.gtw
    if gtw is None:
        return skipped("no GTW configured (audit.gtw)")
    python = ctx.live_python
    if python is None:
        return skipped("no live release to run the probe with (see release)")
    # The probe's own deadline ends it well before the layer timeout kills it.
    deadline = max(0.5, ctx.timeout_of("gtw") - 1.5)
    cmd = (
        f"{shlex.quote(python)} - {gtw_probe.TAG} "
        f"{shlex.quote(json.dumps(probe_config(gtw, deadline)))}"
    )
    try:
        res = await run_bounded(ctx.ssh(), cmd, input=probe_source(), timeout=ctx.timeout_of("gtw"))
    except RemoteTimeout as exc:
        killed = "the probe was killed" if exc.killed else "the probe could not be killed"
        return failed(f"GTW probe to {gtw.endpoint} did not finish in {exc.seconds:.1f}s; {killed}")
    result = parse_json_line(res.stdout)
    if result is None:
        why = tail(res.stderr) or f"exit {res.exit_status}"
        return failed(
            f"the GTW probe did not run with {python} ({why}); redeploy so the release has a "
            "venv with pyzmq"
        )
    return judge_probe(result, gtw)
