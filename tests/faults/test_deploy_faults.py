"""Deploy/audit fault matrix gaps: the link cut at each phase, a full disk during upload, and a
flapping GTW. Real sshd over a loopback TCP proxy, real git, the real deploy flow."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.deploy import flow
from tests.conftest import require
from tests.deploy.conftest import DeployEnv
from tests.fakes.gtw import GtwServer
from tests.fakes.tcpproxy import TcpProxy

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}
MARKER = ".gatebot-release.json"


@pytest.fixture
def proxy(denv: DeployEnv) -> Iterator[TcpProxy]:
    p = TcpProxy(denv.sshd.port).start()
    pinned = denv.tmp / "proxy_known_hosts"
    pinned.write_text(f"[127.0.0.1]:{p.port} {denv.sshd.host_key_pub}\n")
    # A fresh connection per deploy: the proxy's faults apply to new connections.
    denv.overrides.update(port=p.port, known_hosts_file=str(pinned), ssh_persist_s=0)
    try:
        yield p
    finally:
        p.stop()


def _cut_when(proxy: TcpProxy, ready: Callable[[], bool], timeout: float = 30) -> threading.Thread:
    """Cut the link the moment `ready()` holds (polled), from a side thread."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                proxy.cut_now()
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _audit(gtw: GtwServer) -> dict[str, Any]:
    return {
        "min_free_disk_mb": 1,
        "gtw": {"endpoint": gtw.endpoint, "timeout_ms": 400, "retries": 2, "pings": 3},
        "layer_timeout_s": 10,
    }


def _assert_recovered(denv: DeployEnv, good: str, new_files: dict[str, str]) -> None:
    """After a cut: `current` on `good`, lock free, log truthful, and the next deploy works."""
    assert denv.live() == good
    assert (denv.current / MARKER).exists()
    assert not (denv.root / ".gatebot" / "lock").exists(), "the lock was not released"
    events = denv.log_events()
    # Truthful: nothing in the log says the cut release went live and stayed live.
    switches = [e for e in events if e["event"] in ("switch", "rollback")]
    if switches:
        assert switches[-1]["release"] == good, switches[-1]
    denv.overrides.clear()  # straight to sshd: a healthy link
    again = denv.deploy()
    assert again.ok, again.error
    for path, text in new_files.items():
        assert (denv.current / path).read_text() == text
    assert denv.live() == again.release


@pytest.mark.parametrize(
    "phase",
    [
        "upload",
        "install",
        "switch",
        "restart",
    ],
)
def test_link_cut_at_each_phase_leaves_a_good_release_live(
    denv: DeployEnv, proxy: TcpProxy, phase: str
) -> None:
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    flag = denv.tmp / f"{phase}-reached"
    new = {"app.py": "print(2)\n", "requirements.txt": f"# {phase}\n"}
    if phase == "upload":
        new["big.txt"] = "y" * (3 * 1024 * 1024)
        proxy.cut_after(1024 * 1024)
    elif phase == "install":
        denv.overrides["install"] = f"touch {flag}; sleep 5"
        _cut_when(proxy, flag.exists)
    elif phase == "switch":
        # Cut the moment `current` moves (the rename done, the restart not): the slow restart
        # keeps the deploy on the link long enough for the watcher to see it.
        denv.overrides["restart"] = "sleep 2"
        _cut_when(proxy, lambda: denv.live() != first.release)
    else:
        denv.overrides["restart"] = f"touch {flag}; sleep 5"
        _cut_when(proxy, flag.exists)
    denv.rb.commit(new)
    started = time.monotonic()
    cut = denv.deploy()
    assert time.monotonic() - started < 30
    assert not cut.ok, f"the deploy survived a cut at {phase}"
    # Infrastructure: exit 3, saying the link went (the upload names itself).
    assert cut.exit_code == 3, (cut.exit_code, cut.error)
    said = "upload was cut" if phase == "upload" else "connection to the host lost"
    assert said in (cut.error or ""), cut.error
    denv.overrides.pop("install", None)
    denv.overrides.pop("restart", None)
    _assert_recovered(denv, first.release, new)


def test_link_cut_during_the_audit_rolls_back(
    denv: DeployEnv, proxy: TcpProxy, gtw: GtwServer
) -> None:
    denv.rb.commit(BASE)
    cfg = denv.config(audit=_audit(gtw))
    first = denv.deploy(ctx=denv.ctx(cfg, audit=True))
    assert first.ok, first.error
    seen = gtw.requests
    gtw.delay_s = 0.3
    gtw.set_mode("slow")  # the audit is inside its gtw layer when the link goes
    _cut_when(proxy, lambda: gtw.requests > seen)
    new = {"app.py": "print(2)\n"}
    denv.rb.commit(new)
    cut = denv.deploy(ctx=denv.ctx(cfg, audit=True))
    assert not cut.ok and cut.error
    gtw.set_mode("ok")
    _assert_recovered(denv, first.release, new)


def test_link_lost_for_good_after_the_switch_says_how_to_recover(
    denv: DeployEnv, proxy: TcpProxy
) -> None:
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    flag = denv.tmp / "restart-reached"
    denv.overrides["restart"] = f"touch {flag}; sleep 5"

    def gone_for_good() -> bool:
        if not flag.exists():
            return False
        proxy.stop()  # every connection cut and no new one accepted: the reconnect fails too
        return True

    watcher = threading.Thread(
        target=lambda: _wait_until(gone_for_good), name="link-gone", daemon=True
    )
    watcher.start()
    denv.rb.commit({"app.py": "print(2)\n"})
    cut = denv.deploy()
    watcher.join(10)
    assert not cut.ok and cut.exit_code == 3, (cut.exit_code, cut.error)
    error = cut.error or ""
    assert "connection to the host lost" in error, error
    # Honest about what may be live, and how to get back.
    assert f"`current` may still point at {cut.release}" in error, error
    assert denv.live() == cut.release
    hint = f"gatebot rollback --target inf --to {first.release}"
    assert hint in error and "gatebot unlock --target inf --owner test-run" in error, error
    # Following the hint (straight to sshd) recovers.
    denv.overrides.clear()
    assert asyncio.run(flow.unlock(denv.ctx(), "inf", "test-run", False)).startswith("inf: removed")
    back = denv.rollback(first.release)
    assert back.ok, back.error
    assert denv.live() == first.release


def _wait_until(ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ready():
        time.sleep(0.01)


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        require(f"a tmpfs mount to fill a disk ({done.stderr.strip()})", "run the tests as root")


def _fill_the_disk(denv: DeployEnv) -> str:
    """A first release on a 2 MiB tmpfs, then a 3 MiB upload: returns the good release."""
    _mount_tmpfs(denv.root, "2m")
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    denv.rb.commit({"big.bin": os.urandom(3 * 1024 * 1024)})
    full = denv.deploy()
    assert not full.ok and full.exit_code == 1
    assert full.error and "No space left on device" in full.error, full.error
    assert denv.live() == first.release
    assert not (denv.current / "big.bin").exists()
    assert not (denv.root / ".gatebot" / "lock").exists()
    complete = [p.name for p in (denv.root / "releases").iterdir() if (p / MARKER).exists()]
    assert complete == [first.release]  # nothing half-live
    return first.release


def test_remote_disk_full_during_upload_fails_cleanly(denv: DeployEnv) -> None:
    try:
        _fill_the_disk(denv)
    finally:
        subprocess.run(["umount", "-l", str(denv.root)], check=False)


def test_deploy_after_a_disk_full_upload_succeeds(denv: DeployEnv) -> None:
    try:
        _fill_the_disk(denv)
        denv.rb.commit({"big.bin": None, "app.py": "print(3)\n"})
        again = denv.deploy()
        assert again.ok, again.error
        assert (denv.current / "app.py").read_text() == "print(3)\n"
    finally:
        subprocess.run(["umount", "-l", str(denv.root)], check=False)


def test_flapping_gtw_passes_within_retries_or_fails_within_timeout(
    denv: DeployEnv, gtw: GtwServer
) -> None:
    denv.rb.commit(BASE)
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            gtw.set_mode("stopped")
            time.sleep(0.15)
            gtw.set_mode("ok")
            time.sleep(0.15)

    cfg = denv.config(audit=_audit(gtw))
    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    try:
        outcomes = []
        for _ in range(3):
            started = time.monotonic()
            r = denv.deploy(ctx=denv.ctx(cfg, audit=True))
            took = time.monotonic() - started
            assert took < 30, f"the audit hung for {took:.0f} s"
            assert r.audit is not None, r.error
            (layer,) = [x for x in r.audit["layers"] if x["id"] == "gtw"]
            assert layer["status"] in ("pass", "fail"), layer
            if layer["status"] == "fail":
                # Failed cleanly: named, rolled back, the previous good release live.
                assert layer["detail"] and not r.ok and r.status == "auto-rolled-back", r
                assert denv.live() != r.release
            else:
                assert r.ok and denv.live() == r.release, r.error
            outcomes.append(layer["status"])
            denv.rb.commit({"app.py": f"print({len(outcomes)})\n"})
    finally:
        stop.set()
        flapper.join(5)
    gtw.set_mode("ok")
    assert not (denv.root / ".gatebot" / "lock").exists()
    assert (denv.current / MARKER).exists()


def test_a_kept_connection_cut_mid_deploy_is_a_lost_link_and_the_next_deploy_reconnects(
    denv: DeployEnv, proxy: TcpProxy
) -> None:
    """With ssh_persist_s (the default) the deploy rides the connection a previous command
    left open: cutting it is a lost link like any other, and the next deploy opens a new one."""
    denv.overrides["ssh_persist_s"] = 60
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    flag = denv.tmp / "install-reached"
    denv.overrides["install"] = f"touch {flag}; sleep 5"
    _cut_when(proxy, flag.exists)
    new = {"app.py": "print(2)\n", "requirements.txt": "# kept\n"}
    denv.rb.commit(new)
    cut = denv.deploy()
    assert not cut.ok and cut.exit_code == 3, cut.error
    assert "connection to the host lost" in (cut.error or ""), cut.error
    denv.overrides.pop("install")
    assert denv.live() == first.release
    assert not (denv.root / ".gatebot" / "lock").exists(), "the lock was not released"
    again = denv.deploy()  # through the proxy again: the dead connection is not reused
    assert again.ok, again.error
    assert (denv.current / "app.py").read_text() == "print(2)\n"
