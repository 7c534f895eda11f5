"""Deploy hardening: link chains, marker ownership, bytecode caches, bounded host hashing and
the exit code recorded in the run history."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest

from bot.deploy.integrity import compare, remote_hashes
from bot.deploy.layout import integrity_excludes
from bot.deploy.manifest import MODE_LINK, build_manifest, check_link_target
from bot.deploy.state import _marker
from bot.errors import DeployFailed, TransportError
from bot.ssh import load_credentials, open_session
from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

RID = "20261128T214500Z-1a2b3c4"
SHA = "1a2b3c4" + "0" * 33


def _marker_data(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "release": RID,
        "sha": SHA,
        "lock_hash": "h",
        "manifest_digest": "d",
        "files": 1,
        "created_at": "now",
    }
    data.update(over)
    return data


def test_link_chains_are_followed_and_loops_refused() -> None:
    links = {"a/b/L": "../..", "esc": "a/b/L/../../../etc", "ok": "a/b/L/x"}
    check_link_target("ok", "a/b/L/x", links)  # through L to the release root: inside
    check_link_target("esc", "a/b/L/../../../etc")  # lexically fine on its own
    with pytest.raises(DeployFailed, match="'esc' points outside"):
        check_link_target("esc", "a/b/L/../../../etc", links)
    # Through a link that itself leaves the tree (absolute): outside too.
    with pytest.raises(DeployFailed, match="points outside"):
        check_link_target("y", "abs/x", {"abs": "/etc"})
    with pytest.raises(DeployFailed, match="symlink loop"):
        check_link_target("p", "q", {"p": "q", "q": "p"})


def test_a_chained_escape_is_refused_by_build_manifest(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit(
        {"ok.py": "1\n", "a/b/L": "../..", "esc": "a/b/L/../../../etc"},
        modes={"a/b/L": MODE_LINK, "esc": MODE_LINK},
    )
    with pytest.raises(DeployFailed, match="'esc'"):
        build_manifest(rb.path, "main")


def test_a_marker_counts_only_for_its_own_release() -> None:
    assert _marker(RID, _marker_data()) is not None
    assert _marker(RID, _marker_data(release="20990101T000000Z-0000000")) is None
    assert _marker(RID, _marker_data(sha="0" * 40)) is None  # sha7 of the id differs
    assert _marker(RID, {"release": RID}) is None
    assert _marker(RID, None) is None


def test_extra_bytecode_caches_are_ignored_by_default_only(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"pkg/mod.py": "x = 1\n", "pkg/__pycache__/kept.pyc": "tracked"})
    m = build_manifest(rb.path, "main")
    remote = {e.path: (e.mode, e.oid, e.size) for e in m}
    remote["pkg/__pycache__/mod.cpython-311.pyc"] = (0o100644, "1" * 40, 9)
    remote["pkg/stray.txt"] = (0o100644, "2" * 40, 1)
    excl = integrity_excludes(())
    assert compare(m, remote, excl).extra == ("pkg/stray.txt",)
    strict = compare(m, remote, excl, ignore_extra=None)
    assert strict.extra == ("pkg/__pycache__/mod.cpython-311.pyc", "pkg/stray.txt")
    # A TRACKED .pyc that changed is still a change.
    remote["pkg/__pycache__/kept.pyc"] = (0o100644, "3" * 40, 7)
    assert compare(m, remote, excl).changed == ("pkg/__pycache__/kept.pyc",)


@pytest.mark.sshd
def test_hashing_that_outlives_its_timeout_is_killed_on_the_host(
    sshd: SshServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hasher.pid"
    fake = tmp_path / "slow-python.sh"
    fake.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 60\n")
    fake.chmod(0o755)
    target = sshd.target(tmp_path)
    creds = load_credentials("inf", target, {}, tmp_path)

    async def go() -> None:
        async with open_session("inf", target, creds) as session:
            await remote_hashes(session, str(tmp_path), python=str(fake), timeout=1.0)

    start = time.monotonic()
    with pytest.raises(TransportError, match=r"inf: hashing .* timed out after 1s; it was killed"):
        asyncio.run(go())
    assert time.monotonic() - start < 15
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), f"the host's hashing process {pid} outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (sshd reaps it later).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[-1][:1] != "Z"


@pytest.fixture
def denv(sshd: SshServer, tmp_path: Path) -> DeployEnv:
    rb = RepoBuilder(tmp_path / "repo")
    return DeployEnv(sshd, tmp_path, rb, tmp_path / "host" / "inf", tmp_path / "installs.log")


@pytest.mark.sshd
def test_history_tells_a_failed_deploy_from_an_infrastructure_error(denv: DeployEnv) -> None:
    cache = denv.tmp / "cache"
    denv.rb.commit({"a.py": "1\n", "requirements.txt": ""})
    assert denv.deploy(ctx=denv.ctx(cache_dir=cache)).ok
    denv.rb.commit({"a.py": "2\n", "requirements.txt": "x\n"})
    failing = denv.config({"inf": denv.target_data(install="false")})
    assert not denv.deploy(ctx=denv.ctx(failing, cache_dir=cache)).ok
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = denv.config({"inf": denv.target_data(port=closed)})
    assert not denv.deploy(ctx=denv.ctx(down, cache_dir=cache)).ok
    lines = (cache / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["ok"], r["exit_code"]) for r in records] == [(True, 0), (False, 1), (False, 3)]
