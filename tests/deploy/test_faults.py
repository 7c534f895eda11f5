"""Faults: a cut link, a failing install, concurrent deploys, a killed deploy, a bad host key."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bot.deploy import flow
from bot.deploy.manifest import build_manifest
from bot.errors import HostKeyMismatch, LockHeld
from tests.deploy.conftest import DeployEnv
from tests.fakes.tcpproxy import TcpProxy

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}


def test_connection_cut_mid_upload_leaves_current_and_next_deploy_works(denv: DeployEnv) -> None:
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    proxy = TcpProxy(denv.sshd.port).start()
    try:
        # The proxy has its own port, so pin the server's key for that address.
        pinned = denv.tmp / "proxy_known_hosts"
        pinned.write_text(f"[127.0.0.1]:{proxy.port} {denv.sshd.host_key_pub}\n")
        # A fresh connection per deploy: the proxy's faults apply to new connections.
        denv.overrides.update(port=proxy.port, known_hosts_file=str(pinned), ssh_persist_s=0)
        big = os.urandom(3 * 1024 * 1024)
        denv.rb.commit({"big.bin": big})
        proxy.cut_after(1024 * 1024)  # well inside the 3 MiB upload
        cut = denv.deploy()
        assert not cut.ok
        assert proxy.connections[0].cut
        assert "upload was cut" in (cut.error or "") and cut.exit_code == 3
        assert denv.live() == first.release
        assert not (denv.current / "big.bin").exists()
        # The lock was let go over a fresh connection: the next deploy does not wait.
        assert not (denv.root / ".gatebot" / "lock").exists()
        again = denv.deploy()
        assert again.ok, again.error
        assert (denv.current / "big.bin").read_bytes() == big
        # The cut release never got its marker and was pruned as a leftover.
        assert denv.releases() == sorted([first.release, again.release])
    finally:
        proxy.stop()


def test_failing_install_puts_nothing_live(denv: DeployEnv) -> None:
    denv.rb.commit(BASE)
    first = denv.deploy()
    denv.overrides["install"] = "echo resolving; echo 'no such package: nope' >&2; exit 7"
    denv.rb.commit({"requirements.txt": "nope==1\n", "app.py": "print(2)\n"})
    r = denv.deploy()
    assert not r.ok and r.exit_code == 1
    assert "installing dependencies failed (7)" in (r.error or "")
    assert "no such package: nope" in (r.error or "")
    assert denv.live() == first.release
    assert (denv.current / "app.py").read_text() == "print(1)\n"
    incomplete = [
        r
        for r in denv.releases()
        if not (denv.root / "releases" / r / ".gatebot-release.json").exists()
    ]
    assert len(incomplete) == 1  # left for retention, never live
    denv.wait_deleted()
    assert not any(
        (v / ".gatebot-complete").exists() is False and v.exists()
        for v in (denv.root / "venvs").iterdir()
        if v.name != os.readlink(denv.current / ".venv").split("/")[-1]
    )
    # A real pip install from an empty requirements file, offline, inside the new venv (pip
    # comes from the system site-packages the test venvs see).
    denv.overrides["install"] = "python -m pip install -q --no-index --no-deps -r requirements.txt"
    denv.rb.commit({"requirements.txt": "\n"})
    fixed = denv.deploy()
    assert fixed.ok, fixed.error
    assert fixed.venv == "created"


def test_two_deploys_at_once_never_interleave(denv: DeployEnv) -> None:
    denv.overrides["install"] = f"sleep 1; echo x >> {denv.installs}"
    denv.rb.commit(BASE)
    manifest = build_manifest(denv.rb.path, "main")

    async def both(wait_s: float, round_: int) -> list[flow.HostReport]:
        cfg = denv.config({"inf": denv.target_data(lock_wait_s=wait_s)})
        a = flow.deploy(denv.ctx(cfg, run_id=f"run-A{round_}"), ["inf"], manifest)
        b = flow.deploy(denv.ctx(cfg, run_id=f"run-B{round_}"), ["inf"], manifest)
        reports = await asyncio.gather(a, b)
        return [r.hosts[0] for r in reports]

    # No waiting: exactly one fails, clearly, naming who holds the lock.
    reports = asyncio.run(both(0, 1))
    failed = [r for r in reports if not r.ok]
    assert len(failed) == 1, [r.error for r in reports]
    assert "the deploy lock is held by run run-" in (failed[0].error or "")
    assert "gatebot unlock --target inf --owner run-" in (failed[0].error or "")
    # With a bounded wait: the second waits, then finds the sha live; no interleaving.
    denv.rb.commit({"requirements.txt": "# new lock\n"})
    manifest = build_manifest(denv.rb.path, "main")
    reports = asyncio.run(both(30, 2))
    assert all(r.ok for r in reports), [r.error for r in reports]
    assert sorted(r.status for r in reports) == ["already-live", "deployed"]
    runs = [e["run_id"] for e in denv.log_events()]
    blocks = [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]
    assert len(blocks) == len(set(blocks)) == 2, runs  # each run's events are contiguous


def _write_config(denv: DeployEnv, **target: object) -> Path:
    cfg = denv.tmp / "gatebot.yml"
    cfg.write_text(yaml.safe_dump({"deploy": {"targets": {"inf": denv.target_data(**target)}}}))
    return cfg


def _gatebot(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # cwd: the run history (.gatebot-cache) lands in the test's tmp dir, not the checkout.
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true", **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def _start_slow_deploy(
    denv: DeployEnv, run_id: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    started = denv.tmp / "install-started"
    finished = denv.tmp / "install-finished"
    cfg = _write_config(denv, install=f"touch {started}; sleep 3; touch {finished}")
    denv.rb.commit(BASE)
    args = ["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args, "--no-audit"],
        env={**os.environ, "CI": "true", "GATEBOT_RUN_ID": run_id, **(env or {})},
        cwd=denv.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(started)
    except AssertionError:
        proc.kill()
        _out, err = proc.communicate(timeout=10)
        raise AssertionError(f"the deploy did not reach its install step: {err}") from None
    assert (denv.root / ".gatebot" / "lock" / "owner.json").exists()
    return proc


def test_killed_deploy_leaves_a_stale_lock_reported_and_recoverable(denv: DeployEnv) -> None:
    # In its own process (no resident gatebot, whose child a killed client would stop
    # gracefully: tests/deploy/test_resident.py): the process doing the deploy dies.
    proc = _start_slow_deploy(denv, "run-killed", {"GATEBOT_RESIDENT": "0"})
    proc.kill()  # SIGKILL: no finally, the lock stays
    proc.wait(10)
    killed_at = time.monotonic()
    cfg = _write_config(denv)
    common = ["--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)]
    blocked = _gatebot(["deploy", *common, "--no-audit"], denv.tmp)
    assert blocked.returncode == 1
    assert "held by run run-killed" in blocked.stderr
    assert f"its process {proc.pid}" in blocked.stderr and "is gone" in blocked.stderr
    assert "--owner run-killed" in blocked.stderr
    listed = _gatebot(["releases", *common], denv.tmp)
    assert "locked by run run-killed" in listed.stdout
    # The rest in-process (each CLI start costs seconds on a busy machine).
    ctx = denv.ctx()
    with pytest.raises(LockHeld, match="not by someone-else"):
        asyncio.run(flow.unlock(ctx, "inf", "someone-else", False))
    assert (denv.root / ".gatebot" / "lock").exists()
    said = asyncio.run(flow.unlock(ctx, "inf", "run-killed", False))
    assert "removed the lock of run run-killed" in said
    done = denv.deploy()
    assert done.ok, done.error
    assert (denv.current / "app.py").read_text() == "print(1)\n"
    assert [e["event"] for e in denv.log_events()][:1] == ["unlock"]
    # The killed deploy's install was stopped on the host when its connection dropped.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - killed_at)))
    assert not (denv.tmp / "install-finished").exists()


def test_sigterm_releases_the_lock(denv: DeployEnv) -> None:
    proc = _start_slow_deploy(denv, "run-cancelled")
    proc.send_signal(signal.SIGTERM)  # what a cancelled workflow sends
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "interrupted by SIGTERM" in err
    assert not (denv.root / ".gatebot" / "lock").exists()
    assert not denv.current.exists()
    # The host stopped the install when the deploy went away: nothing runs on as an orphan.
    time.sleep(3.5)
    assert not (denv.tmp / "install-finished").exists()


def test_wrong_pinned_host_key_is_refused(denv: DeployEnv) -> None:
    other = denv.tmp / "other_known_hosts"
    pub = (denv.sshd.root / "id_ed25519.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{denv.sshd.port} {pub[0]} {pub[1]}\n")
    denv.overrides["known_hosts_file"] = str(other)
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.exit_code == 3
    assert "does not match the pinned" in (r.error or "") and "127.0.0.1" in (r.error or "")
    assert not denv.root.exists()
    with pytest.raises(HostKeyMismatch):
        flow.raise_for_failures(flow.RolloutReport(op="deploy", ok=False, hosts=[r]))
