"""Hooks, the env file per release and the health-gated switch over the real loopback sshd: real
commands, real files, real processes. The decisions are also in test_lifecycle_decisions.py."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.host.openssh import OpenSshConnector
from bot.deploy.hostside.envfile import parse_env
from bot.deploy.hostside.protocol import Command
from bot.ssh.openssh import ssh_binary
from tests.deploy.conftest import DeployEnv
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import SshServer, free_port

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}
POINTS = ("before_build", "after_build", "before_switch", "after_switch", "after_rollback")

# A release's service: HTTP on $GATEBOT_PORT or on the Unix socket $GATEBOT_SOCKET; /healthz
# answers 200 ("ok"), 503 ("sick"), or nothing at all ("mute": it never listens).
SERVE = r"""
import http.server, os, socketserver, sys, time
mode = sys.argv[1]
with open(os.path.join(os.environ["PIDS"], os.environ["GATEBOT_RELEASE"]), "w") as fh:
    fh.write(str(os.getpid()))
if mode == "mute":
    time.sleep(600)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if mode == "ok" else 503)
        self.end_headers()
    def log_message(self, *args):
        pass
    def address_string(self):
        return "local"
if os.environ.get("GATEBOT_SOCKET"):
    class S(socketserver.UnixStreamServer):
        pass
    S(os.environ["GATEBOT_SOCKET"], H).serve_forever()
else:
    http.server.HTTPServer(("127.0.0.1", int(os.environ["GATEBOT_PORT"])), H).serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pid_of(pids: Path, release: str | None) -> int:
    return int((pids / (release or "?")).read_text())


# ---- hooks ------------------------------------------------------------------------------------


def _hooks(record: Path) -> dict[str, str]:
    line = f'echo "$GATEBOT_HOOK $(basename "$PWD") $GATEBOT_RELEASE" >> {record}'
    return {p: line for p in POINTS}


def test_each_hook_point_runs_on_the_host_where_documented(denv: DeployEnv) -> None:
    record = denv.tmp / "hooks.txt"
    config = denv.config(hooks=_hooks(record))
    denv.rb.commit(BASE)
    first = denv.deploy(ctx=denv.ctx(config))
    assert first.ok, first.error
    rel = first.release
    assert record.read_text().splitlines() == [
        f"before_build {denv.root.name} {rel}",
        f"after_build {rel} {rel}",
        f"before_switch {rel} {rel}",
        f"after_switch {rel} {rel}",
    ]
    denv.rb.commit({"app.py": "print(2)\n"})
    second = denv.deploy(ctx=denv.ctx(config))
    record.write_text("")
    back = denv.rollback(ctx=denv.ctx(config))
    assert back.ok and denv.live() == rel and second.release != rel
    assert record.read_text().splitlines() == [
        f"before_switch {rel} {rel}",
        f"after_switch {rel} {rel}",
        f"after_rollback {rel} {rel}",
    ]
    events = [e for e in denv.log_events() if e["event"] == "hook"]
    assert events and all(e["ok"] for e in events)


def test_a_failing_before_switch_hook_aborts_before_current_moves(denv: DeployEnv) -> None:
    denv.rb.commit(BASE)
    good = denv.deploy()
    denv.rb.commit({"app.py": "print(2)\n"})
    config = denv.config(hooks={"before_switch": "echo refusing >&2; exit 7"})
    r = denv.deploy(ctx=denv.ctx(config))
    assert not r.ok and r.exit_code == 1 and "exited 7: refusing" in (r.error or "")
    assert denv.live() == good.release and (denv.current / "app.py").read_text() == "print(1)\n"
    assert not (denv.root / ".gatebot" / "lock").exists()
    assert r.hooks[-1].point == "before_switch" and "refusing" in r.hooks[-1].output


def test_a_hook_that_outlives_its_timeout_is_stopped_with_its_children(denv: DeployEnv) -> None:
    pid_file = denv.tmp / "sleeper.pid"
    config = denv.config(
        hooks={"after_build": {"run": f"sleep 60 & echo $! > {pid_file}; wait", "timeout_s": 1}}
    )
    denv.rb.commit(BASE)
    start = time.monotonic()
    r = denv.deploy(ctx=denv.ctx(config))
    assert not r.ok and "timed out" in (r.error or "") and time.monotonic() - start < 15
    assert not denv.current.exists() and r.release not in denv.releases()
    assert wait_dead(int(pid_file.read_text()))


def test_hook_output_is_streamed_while_the_hook_runs(sshd: SshServer, tmp_path: Path) -> None:
    ssh = ssh_binary()
    assert ssh is not None
    target = sshd.target(tmp_path, python=sys.executable)
    connector = OpenSshConnector({}, tmp_path, ssh)
    seen: list[tuple[float, str]] = []

    async def go() -> float:
        async with connector.connect("inf", target) as agent:
            cmd = Command("echo first; sleep 1.5; echo second", str(tmp_path), {}, None, 30)
            answer = await agent.command(cmd, lambda line: seen.append((time.monotonic(), line)))
            assert answer.status == 0 and "second" in answer.output
            return time.monotonic()

    ended = asyncio.run(go())
    assert [line for _t, line in seen] == ["first", "second"]
    assert ended - seen[0][0] > 1.0  # the first line came while the command still ran


# ---- the env file -----------------------------------------------------------------------------


def test_env_file_round_trip_private_never_in_ps_and_restored_by_rollback(
    denv: DeployEnv,
) -> None:
    secret1, secret2 = "hunter2-first-VALUE", "hunter2-second-VALUE"
    ps_seen = denv.tmp / "ps.txt"
    seen_by_hook = denv.tmp / "seen.txt"
    denv.overrides["env"] = {"secrets": ["DB_PASSWORD"], "vars": {"MODE": "prod"}}
    config = denv.config(
        hooks={
            # What every process on the host shows while the deploy runs, and what a hook sees.
            "after_build": f'ps -eo args > {ps_seen}; echo "$DB_PASSWORD" > {seen_by_hook}; '
            'echo "password is $DB_PASSWORD"'
        }
    )
    denv.rb.commit(BASE)
    first = denv.deploy(ctx=denv.ctx(config, env={"DB_PASSWORD": secret1}))
    assert first.ok, first.error
    env_file = denv.root / ".gatebot" / "env" / f"{first.release}.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    assert (denv.current / ".env").is_symlink()
    assert parse_env((denv.current / ".env").read_text()) == {
        "DB_PASSWORD": secret1,
        "MODE": "prod",
    }
    assert seen_by_hook.read_text().strip() == secret1  # hooks run with the release's env
    assert secret1 not in ps_seen.read_text()  # never on a command line
    report_text = first.model_dump_json()
    for where in (denv.out.getvalue(), report_text, json.dumps(denv.log_events())):
        assert secret1 not in where
    assert "password is ***" in denv.out.getvalue()
    assert first.env is not None and first.env.added == ["DB_PASSWORD", "MODE"]

    denv.rb.commit({"app.py": "print(2)\n"})
    second = denv.deploy(ctx=denv.ctx(config, env={"DB_PASSWORD": secret2}))
    assert second.ok and second.env is not None and second.env.changed == ["DB_PASSWORD"]
    assert parse_env((denv.current / ".env").read_text())["DB_PASSWORD"] == secret2
    back = denv.rollback(ctx=denv.ctx(config))
    assert back.ok and denv.live() == first.release
    assert parse_env((denv.current / ".env").read_text())["DB_PASSWORD"] == secret1
    # The env link is gatebot's, not the tree's: the audit-style check of the live release
    # against git does not count it as an extra file (it was excluded when built).
    assert ".env" not in json.dumps(second.notes)


def test_retention_removes_the_env_files_of_pruned_releases(denv: DeployEnv) -> None:
    denv.overrides.update(env={"vars": {"A": "1"}}, keep_releases=2)
    denv.rb.commit(BASE)
    made = []
    for n in range(4):
        denv.rb.commit({"app.py": f"print({n})\n"})
        made.append(denv.deploy().release)
    kept = {p.name.removesuffix(".env") for p in (denv.root / ".gatebot" / "env").iterdir()}
    assert kept == set(denv.releases())
    assert made[0] not in kept


# ---- the health-gated switch ------------------------------------------------------------------


def _health(denv: DeployEnv, mode: str = "ok", **over: Any) -> dict[str, Any]:
    pids = denv.tmp / "pids"
    pids.mkdir(exist_ok=True)
    return {
        "start": f"PIDS={pids} exec {sys.executable} serve.py {mode}",
        "ports": [free_port(), free_port()],
        "check": {"http": "/healthz"},
        "timeout_s": 20,
        "interval_s": 0.1,
        "stop_timeout_s": 5,
        **over,
    }


def test_a_healthy_release_goes_live_and_the_old_one_is_stopped(denv: DeployEnv) -> None:
    pids = denv.tmp / "pids"
    denv.overrides.update(restart=None, health=_health(denv))
    denv.rb.commit({**BASE, "serve.py": SERVE})
    first = denv.deploy()
    assert first.ok, first.error
    assert first.health is not None and first.health["healthy"]
    old_pid = pid_of(pids, first.release)
    assert alive(old_pid)
    denv.rb.commit({"app.py": "print(2)\n"})
    second = denv.deploy()
    assert second.ok, second.error
    assert denv.live() == second.release and second.health is not None
    assert (
        second.health["port"] != first.health["port"] and second.health["stopped"] == first.release
    )
    assert alive(pid_of(pids, second.release)) and wait_dead(old_pid)
    events = [e["event"] for e in denv.log_events()]
    assert events[-4:] == ["env", "health", "switch", "stop"] or events[-3:] == [
        "health",
        "switch",
        "stop",
    ]
    # Stop what we started.
    os.kill(pid_of(pids, second.release), 15)


def test_a_release_that_never_gets_healthy_is_never_switched_to(denv: DeployEnv) -> None:
    pids = denv.tmp / "pids"
    denv.overrides.update(restart=None, health=_health(denv))
    denv.rb.commit({**BASE, "serve.py": SERVE})
    good = denv.deploy()
    assert good.ok, good.error
    denv.overrides["health"] = _health(denv, "sick", timeout_s=2)
    denv.rb.commit({"app.py": "print(2)\n"})
    start = time.monotonic()
    bad = denv.deploy()
    assert not bad.ok and bad.exit_code == 1 and time.monotonic() - start < 15
    assert "never got healthy within 2s" in (bad.error or "") and "HTTP 503" in (bad.error or "")
    assert denv.live() == good.release
    assert wait_dead(pid_of(pids, bad.release))  # the candidate was stopped
    assert alive(pid_of(pids, good.release))  # the live one never was
    assert bad.release not in denv.releases()
    os.kill(pid_of(pids, good.release), 15)


def test_a_start_command_that_dies_fails_fast_with_its_output(denv: DeployEnv) -> None:
    denv.overrides.update(
        restart=None, health=_health(denv, start="echo cannot bind >&2; exit 4", timeout_s=30)
    )
    denv.rb.commit(BASE)
    start = time.monotonic()
    r = denv.deploy()
    assert not r.ok and "exited with 4" in (r.error or "") and "cannot bind" in (r.error or "")
    assert time.monotonic() - start < 15 and not denv.current.exists()


def test_health_over_a_unix_socket_with_a_tcp_check(denv: DeployEnv) -> None:
    pids = denv.tmp / "pids"
    health = _health(denv, check={"tcp": True}, socket="run/app.sock")
    health.pop("ports")
    denv.overrides.update(restart=None, health=health)
    denv.rb.commit({**BASE, "serve.py": SERVE})
    too_long = denv.deploy()  # pytest's temporary paths are long
    assert not too_long.ok and "longer than a Unix socket allows" in (too_long.error or "")
    short = Path(tempfile.mkdtemp(prefix="gb", dir="/tmp"))
    denv.root = short / "inf"
    denv.overrides["path"] = str(denv.root)
    r = denv.deploy()
    assert r.ok, r.error
    assert r.health is not None and r.health["socket"].endswith(f"{r.release}/run/app.sock")
    assert (denv.current / "run" / "app.sock").is_socket()
    os.kill(pid_of(pids, r.release), 15)
    shutil.rmtree(short, ignore_errors=True)


def test_health_by_the_gtw_round_trip_from_the_release(denv: DeployEnv, gtw: GtwServer) -> None:
    pids = denv.tmp / "pids"
    denv.overrides.update(restart=None, health=_health(denv, check={"gtw": True}))
    config = denv.config(audit={"gtw": {"endpoint": gtw.endpoint, "timeout_ms": 400}})
    denv.rb.commit({**BASE, "serve.py": SERVE})
    r = denv.deploy(ctx=denv.ctx(config))
    assert r.ok, r.error
    assert r.health is not None and r.health["healthy"] and "replied" in r.health["detail"]
    os.kill(pid_of(pids, r.release), 15)
