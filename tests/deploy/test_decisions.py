"""The deploy decision matrix against the in-memory host: milliseconds each, no sshd.

The same decisions are tested over the wire against the loopback sshd:
success / one changed file / redeploy / retention / dry run / failed restart / failed audit /
rollout max-fail in tests/deploy/test_deploy.py; cut links and the stale lock in
tests/deploy/test_faults.py and tests/faults/test_deploy_faults.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from bot.deploy.flow import raise_for_failures
from bot.deploy.host.memfs import File
from bot.deploy.report import RolloutReport
from bot.deploy.steps.base import HostRun
from bot.errors import DeployFailed, LockHeld, UsageError
from tests.deploy.memenv import MemEnv, fail_restart_when
from tests.gitrepo import RepoBuilder

BASE = {"app.py": "print(1)\n", "lib/util.py": "X = 1\n", "requirements.txt": ""}


@pytest.fixture
def env(tmp_path: Path) -> MemEnv:
    e = MemEnv(tmp_path, RepoBuilder(tmp_path / "repo"))
    e.target_data()  # the "inf" host
    return e


def test_success_lays_out_a_release_and_the_next_sends_one_file(env: MemEnv) -> None:
    sha = env.rb.commit(BASE)
    first = env.deploy()
    assert first.ok, first.error
    assert first.status == "deployed" and first.sha == sha and first.venv == "created"
    assert env.host.live() == first.release and env.read("app.py") == "print(1)\n"
    marker = json.loads(env.read(".gatebot-release.json") or "{}")
    assert marker["sha"] == sha and marker["files"] == 3
    assert env.events() == ["release", "switch", "audit"]
    assert first.audit is not None and first.audit["passed"] is True
    assert not env.host.fs.isdir(f"{env.host.root}/.gatebot/lock")
    env.rb.commit({"lib/util.py": "X = 2\n"})
    second = env.deploy()
    assert second.ok, second.error
    assert second.files_sent == 1 and second.files_reused == 2 and second.venv == "reused"
    assert second.previous == first.release and env.read("lib/util.py") == "X = 2\n"
    # The unchanged file is the same inode (a hard link), the changed one a new file.
    old = env.host.fs.get(f"{env.host.root}/releases/{first.release}/app.py")
    new = env.host.fs.get(f"{env.host.root}/releases/{second.release}/app.py")
    assert isinstance(old, File) and old is new


def test_redeploys_send_nothing(env: MemEnv) -> None:
    old_sha = env.rb.commit(BASE)
    first = env.deploy()
    again = env.deploy()
    assert again.status == "already-live" and again.release == first.release
    assert "extract" not in env.host.calls[env.host.calls.index("connect", 1) :]
    env.rb.commit({"app.py": "print(2)\n"})
    env.deploy()
    back = env.deploy(old_sha)
    assert back.ok and back.status == "switched" and back.release == first.release
    assert back.files_sent == 0 and env.host.live() == first.release


def test_failed_restart_rolls_back_and_marks_the_release_bad(env: MemEnv) -> None:
    env.host.commands = fail_restart_when("BROKEN")
    env.rb.commit(BASE)
    good = env.deploy()
    env.rb.commit({"BROKEN": "yes\n"})
    bad = env.deploy()
    assert not bad.ok and bad.exit_code == 1
    assert bad.status == "auto-rolled-back" and bad.live == good.release
    assert env.host.live() == good.release
    assert f"{good.release} is live" in (bad.error or "")
    assert env.events()[-4:] == ["switch", "rollback", "bad", "audit"]
    assert env.host.log_events()[-2]["release"] == bad.release
    assert bad.rollback_audit is not None and bad.rollback_audit["passed"] is True
    with pytest.raises(DeployFailed, match="is live"):
        raise_for_failures(RolloutReport(op="deploy", ok=False, hosts=[bad]))


def test_failed_restart_without_an_earlier_release_stays_live_and_bad(env: MemEnv) -> None:
    env.host.commands = fail_restart_when("app.py")
    env.rb.commit(BASE)
    r = env.deploy()
    assert not r.ok and r.status == "failed" and env.host.live() == r.release
    assert "no earlier good release" in (r.error or "") and env.events()[-1] == "bad"


def test_failed_audit_rolls_back_and_reports_both_audits(env: MemEnv) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.audit_failures = lambda release, sha: (
        {"imports": "app.missing does not import"} if release != good.release else {}
    )
    env.rb.commit({"app.py": "import missing\n"})
    bad = env.deploy()
    assert not bad.ok and bad.status == "auto-rolled-back" and env.host.live() == good.release
    assert bad.audit is not None and bad.audit["passed"] is False
    assert bad.rollback_audit is not None and bad.rollback_audit["passed"] is True
    assert "audit failed at imports" in (bad.error or "")
    assert any(e["event"] == "bad" and e["release"] == bad.release for e in env.host.log_events())


def test_the_venv_is_started_before_the_upload_and_taken_after_it(env: MemEnv) -> None:
    env.rb.commit(BASE)
    assert env.deploy().ok
    calls = env.host.calls
    assert calls.index("start_venv") < calls.index("extract") < calls.index("build_venv")
    env.rb.commit({"app.py": "print(2)\n"})
    before = len(env.host.calls)
    reused = env.deploy()
    assert reused.ok and reused.venv == "reused"
    assert "start_venv" not in env.host.calls[before:]  # a complete venv is not made again


def test_a_venv_the_host_could_not_start_is_made_by_build_venv(env: MemEnv) -> None:
    env.host.fail("start_venv", kind="fail", message="no room")
    env.rb.commit(BASE)
    r = env.deploy()
    assert r.ok, r.error
    assert r.venv == "created" and env.host.fs.isdir(f"{env.host.root}/current/.venv")


@pytest.mark.parametrize(
    "op", ["seed", "start_venv", "extract", "build_venv", "write_file", "switch"]
)
def test_a_cut_before_the_switch_leaves_current_and_the_lock_free(env: MemEnv, op: str) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.fail(op, nth=env.host.calls.count(op) + 1)
    env.rb.commit({"app.py": "print(2)\n", "requirements.txt": "# new\n"})
    cut = env.deploy()
    assert not cut.ok and cut.exit_code == 3, cut.error
    assert env.host.live() == good.release and env.read("app.py") == "print(1)\n"
    # The lock was let go over a fresh connection; the next deploy goes through.
    assert not env.host.fs.isdir(f"{env.host.root}/.gatebot/lock")
    again = env.deploy()
    assert again.ok, again.error
    assert env.read("app.py") == "print(2)\n"
    assert good.release in env.host.releases() and again.release in env.host.releases()


@pytest.mark.parametrize("op", ["switch", "shell", "audit"])
def test_a_cut_after_the_switch_rolls_back_over_a_fresh_connection(env: MemEnv, op: str) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.fail(op, when="after", nth=env.host.calls.count(op) + 1)
    env.rb.commit({"app.py": "print(2)\n"})
    cut = env.deploy()
    assert not cut.ok and cut.exit_code == 3
    assert "Rolled back over a fresh connection" in (cut.error or ""), cut.error
    assert cut.status == "auto-rolled-back" and cut.live == good.release
    assert env.host.live() == good.release
    assert any(e["event"] == "bad" and e["release"] == cut.release for e in env.host.log_events())
    assert not env.host.fs.isdir(f"{env.host.root}/.gatebot/lock")


def test_a_cut_that_outlasts_the_reconnect_says_how_to_recover(env: MemEnv) -> None:
    env.rb.commit(BASE)
    env.deploy()
    env.host.fail("switch", when="after", nth=2)
    env.host.fail("connect", nth=env.host.calls.count("connect") + 2)  # the reconnect
    env.host.fail("connect", nth=env.host.calls.count("connect") + 3)  # the lock's reconnect
    env.rb.commit({"app.py": "print(2)\n"})
    cut = env.deploy()
    assert not cut.ok and cut.exit_code == 3
    assert "Rolling back over a fresh connection failed too" in (cut.error or "")
    assert "gatebot unlock --target inf --owner mem-run" in (cut.error or "")


def test_a_stale_lock_is_reported_with_its_owner_and_removed_by_owner(env: MemEnv) -> None:
    env.rb.commit(BASE)
    root = env.host.root
    env.host.fs.mkdirs(f"{root}/.gatebot/lock")
    owner = {"run_id": "run-killed", "host": socket.gethostname(), "pid": 2**22 + 7, "op": "x"}
    env.host.fs.put(f"{root}/.gatebot/lock/owner.json", File(json.dumps(owner).encode()))
    blocked = env.deploy()
    assert not blocked.ok and blocked.error_type == "LockHeld"
    assert "held by run run-killed" in (blocked.error or "")
    assert f"its process {2**22 + 7}" in (blocked.error or "") and "is gone" in (
        blocked.error or ""
    )
    assert "--owner run-killed" in (blocked.error or "")
    with pytest.raises(LockHeld, match="not by someone-else"):
        env.unlock("someone-else")
    assert "removed the lock of run run-killed" in env.unlock("run-killed")
    done = env.deploy()
    assert done.ok, done.error
    assert env.events()[0] == "unlock"


def test_retention_keeps_n_and_prunes_unused_venvs(env: MemEnv) -> None:
    env.overrides["keep_releases"] = 2
    ids = []
    for i in range(4):
        env.rb.commit({**BASE, "requirements.txt": f"# {i}\n"})
        r = env.deploy()
        assert r.ok, r.error
        ids.append(r.release)
    assert env.host.releases() == sorted(ids[-2:])
    assert len(env.host.fs.listdir(f"{env.host.root}/venvs")) == 2
    assert "prune" in env.events()


def test_dry_run_changes_nothing(env: MemEnv) -> None:
    env.rb.commit(BASE)
    first = env.deploy()
    calls = len(env.host.calls)
    env.rb.commit({"app.py": "print(2)\n"})
    host = env.deploy_all(["inf"], dry_run=True).hosts[0]
    assert host.ok and host.status == "dry-run" and host.files_reused == 2
    assert "would send 1 files" in env.out.getvalue() and "send app.py" in env.out.getvalue()
    assert env.host.live() == first.release and len(env.host.releases()) == 1
    assert set(env.host.calls[calls:]) <= {"connect", "inspect"}


def test_rollout_stops_when_failures_exceed_the_percentage(env: MemEnv) -> None:
    env.rb.commit(BASE)
    targets = {n: env.target_data(n) for n in ("a-down", "b-up", "c-up")}
    env.hosts["a-down"].fail("connect", nth=1)
    stop = env.config(targets, rollout={"batch_size": 1, "max_fail_percentage": 0})
    report = env.deploy_all(["a-down", "b-up", "c-up"], ctx=env.ctx(stop))
    assert [h.status for h in report.hosts] == ["failed", "skipped", "skipped"]
    assert "cannot connect" in (report.hosts[0].error or "")
    assert env.hosts["b-up"].live() is None
    env.hosts["a-down"].fail("connect", nth=2)
    tolerant = env.config(targets, rollout={"batch_size": 2, "max_fail_percentage": 34})
    report = env.deploy_all(["a-down", "b-up", "c-up"], ctx=env.ctx(tolerant))
    assert [h.status for h in report.hosts] == ["failed", "deployed", "deployed"]


def test_rollback_choices(env: MemEnv) -> None:
    env.rb.commit(BASE)
    a = env.deploy()
    env.rb.commit({"app.py": "print(2)\n"})
    b = env.deploy()
    env.rb.commit({"app.py": "print(3)\n"})
    env.deploy()
    r = env.rollback()
    assert r.ok and r.status == "rolled-back" and env.host.live() == b.release
    assert r.files_sent == 0 and r.release == b.release and r.previous != b.release
    same = env.rollback(to=b.release)
    assert same.ok and same.status == "rolled-back" and env.host.live() == b.release
    assert not env.rollback(to="20200101T000000Z-0000000").ok
    bad = env.rollback(to="not-an-id")
    assert not bad.ok and bad.exit_code == 2
    back = env.rollback(to=a.release)
    assert back.ok and env.host.live() == a.release and env.events()[-2] == "rollback"


def test_hooks_run_between_steps_and_a_failing_one_stops_before_the_switch(env: MemEnv) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    seen: list[str] = []

    async def note(run: HostRun) -> None:
        seen.append(f"{run.plan.kind if run.plan else '-'}:{run.live}")

    async def refuse(run: HostRun) -> None:
        raise DeployFailed(f"{run.name}: before_switch refused")

    env.rb.commit({"app.py": "print(2)\n"})
    r = env.deploy(ctx=env.ctx(hooks={"after_build": [note], "before_switch": [refuse]}))
    assert not r.ok and "before_switch refused" in (r.error or "")
    assert seen == [f"build:{good.release}"] and env.host.live() == good.release
    with pytest.raises(UsageError, match="before_swtich"):
        env.deploy(ctx=env.ctx(hooks={"before_swtich": [note]}))
