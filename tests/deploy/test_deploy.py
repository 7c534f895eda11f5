"""Deploys over the real loopback sshd: what lands on the host, what is sent, what is reused."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from bot.deploy import flow
from bot.deploy.hostside import fsops
from bot.deploy.hostside.protocol import Inspect
from bot.deploy.manifest import MODE_EXEC, MODE_LINK
from bot.errors import DeployFailed
from tests.deploy.conftest import DeployEnv

pytestmark = pytest.mark.sshd

BASE = {
    "app/main.py": "print('v1')\n",
    "app/util.py": "X = 1\n",
    "bin/run": "#!/bin/sh\necho run\n",
    "data/blob.bin": bytes(range(256)) * 40,
    "README": "hello\n",
    "link-to-main": "app/main.py",
    "requirements.txt": "",
}
BASE_MODES = {"bin/run": MODE_EXEC, "link-to-main": MODE_LINK}


def _release(denv: DeployEnv, rid: str | None) -> Path:
    assert rid is not None
    return denv.root / "releases" / rid


def test_first_deploy_lays_out_a_complete_release(denv: DeployEnv) -> None:
    sha = denv.rb.commit(BASE, modes=BASE_MODES)
    r = denv.deploy()
    assert r.ok, r.error
    assert r.status == "deployed" and r.sha == sha and r.venv == "created"
    rel = _release(denv, r.release)
    # `current` is a RELATIVE link to the release.
    assert os.readlink(denv.current) == f"releases/{r.release}"
    assert (denv.current / "app" / "main.py").read_text() == "print('v1')\n"
    assert (rel / "data" / "blob.bin").read_bytes() == bytes(range(256)) * 40
    assert os.stat(rel / "bin" / "run").st_mode & stat.S_IXUSR
    assert not os.stat(rel / "README").st_mode & stat.S_IXUSR
    assert os.readlink(rel / "link-to-main") == "app/main.py"
    marker = json.loads((rel / ".gatebot-release.json").read_text())
    assert marker["sha"] == sha and marker["release"] == r.release and marker["files"] == 7
    # One venv per lock hash, linked relatively, built by the install command inside it.
    venv_link = os.readlink(rel / ".venv")
    assert venv_link.startswith("../../venvs/") and (rel / ".venv" / ".gatebot-complete").exists()
    assert denv.installs.read_text().strip() == str(denv.root / "venvs" / venv_link.split("/")[-1])
    events = [e["event"] for e in denv.log_events()]
    assert events == ["release", "switch"]
    assert not (denv.root / ".gatebot" / "lock").exists()
    # Link targets travel in tar headers, so content bytes are the regular files only.
    assert r.files_sent == 7 and r.content_bytes_sent == sum(
        len(v) if isinstance(v, bytes) else len(v.encode())
        for k, v in BASE.items()
        if k != "link-to-main"
    )


def test_one_changed_file_sends_only_that_file(denv: DeployEnv) -> None:
    denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    denv.rb.commit({"app/util.py": "X = 2  # changed\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert r.files_sent == 1
    assert r.content_bytes_sent == len("X = 2  # changed\n")
    # The stream is that file plus tar headers and padding: a few KiB, not the tree.
    assert r.bytes_sent <= 4 * 1024
    assert r.files_reused == 6 and r.venv == "reused" and denv.install_count() == 1
    old, new = _release(denv, first.release), _release(denv, r.release)
    # Unchanged files are hard links to the old release; the changed one is a new inode.
    assert os.stat(old / "data/blob.bin").st_ino == os.stat(new / "data/blob.bin").st_ino
    assert os.stat(old / "app/util.py").st_ino != os.stat(new / "app/util.py").st_ino
    assert (old / "app/util.py").read_text() == "X = 1\n"
    assert (denv.current / "app/util.py").read_text() == "X = 2  # changed\n"


def test_delete_rename_mode_flip_and_type_changes(denv: DeployEnv) -> None:
    denv.rb.commit({**BASE, "gone/only.txt": "bye\n", "tool.sh": "echo\n"}, modes=BASE_MODES)
    first = denv.deploy()
    denv.rb.commit(
        {
            "gone/only.txt": None,  # deleted, its directory too
            "README": None,
            "README.md": "hello\n",  # renamed
            "tool.sh": "echo\n",  # same content, now executable
            "link-to-main": None,
            "link-to-main/inside.txt": "a dir where a link was\n",
            "app/util.py": None,
            "app/util.py/x": "a dir where a file was\n",
        },
        modes={"tool.sh": MODE_EXEC},
    )
    r = denv.deploy()
    assert r.ok, r.error
    old, new = _release(denv, first.release), _release(denv, r.release)
    assert not (new / "gone").exists() and not (new / "README").exists()
    assert (new / "README.md").read_text() == "hello\n"
    assert os.stat(new / "tool.sh").st_mode & stat.S_IXUSR
    # The old release keeps its mode: the mode change made a new file, not a chmod on a link.
    assert not os.stat(old / "tool.sh").st_mode & stat.S_IXUSR
    assert (new / "link-to-main").is_dir() and not (new / "link-to-main").is_symlink()
    assert (new / "link-to-main/inside.txt").read_text() == "a dir where a link was\n"
    # Writing under a path that was a symlink must not have gone through the link.
    assert not (old / "app/main.py").is_dir()
    assert (new / "app/util.py/x").exists() and (old / "app/util.py").read_text() == "X = 1\n"
    assert r.files_deleted >= 2


def test_lock_file_drives_the_venv(denv: DeployEnv) -> None:
    denv.rb.commit(BASE, modes=BASE_MODES)
    a = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    b = denv.deploy()
    assert b.venv == "reused" and denv.install_count() == 1
    denv.rb.commit({"requirements.txt": "# pinned differently\n"})
    c = denv.deploy()
    assert c.venv == "created" and denv.install_count() == 2
    link_a = os.readlink(_release(denv, a.release) / ".venv")
    link_c = os.readlink(_release(denv, c.release) / ".venv")
    assert link_a != link_c
    # Rollback brings back the files AND the venv of the older release, with no transfer.
    back = denv.rollback(to=a.release)
    assert back.ok, back.error
    assert back.status == "rolled-back" and back.files_sent == 0 and back.bytes_sent == 0
    assert denv.live() == a.release
    assert os.readlink(denv.current / ".venv") == link_a
    assert (denv.current / "app/main.py").read_text() == "print('v1')\n"
    assert denv.install_count() == 2
    assert denv.log_events()[-1]["event"] == "rollback"


def test_redeploy_of_live_sha_sends_nothing(denv: DeployEnv) -> None:
    denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    again = denv.deploy()
    assert again.ok, again.error
    assert again.status == "already-live" and again.release == first.release
    assert again.files_sent == 0 and again.bytes_sent == 0 and "upload" not in again.phases
    assert len(denv.releases()) == 1


def test_redeploy_of_an_older_sha_switches_to_its_release(denv: DeployEnv) -> None:
    old_sha = denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    denv.deploy()
    back = denv.deploy(old_sha)
    assert back.ok, back.error
    assert back.status == "switched" and back.release == first.release and back.files_sent == 0
    assert denv.live() == first.release


def test_plain_rollback_goes_to_previous_and_skips_bad(denv: DeployEnv) -> None:
    denv.rb.commit(BASE, modes=BASE_MODES)
    a = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    b = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v3')\n"})
    denv.deploy()
    r = denv.rollback()
    assert r.ok and denv.live() == b.release
    # Mark b bad by hand (as a failed audit would) and roll back from there: a, not b.
    line = {"ts": "t", "event": "bad", "release": b.release, "ok": False}
    with (denv.root / ".gatebot/deploy.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    r2 = denv.rollback()
    assert r2.ok, r2.error
    assert denv.live() == a.release
    refused = denv.rollback(to=b.release)
    assert not refused.ok and "marked bad" in (refused.error or "")
    unknown = denv.rollback(to="20200101T000000Z-0000000")
    assert not unknown.ok and "no release 20200101T000000Z-0000000" in (unknown.error or "")


def test_a_long_deploy_log_answers_with_the_lines_of_releases_still_there(
    denv: DeployEnv,
) -> None:
    """The log grows with every deploy. The host answers with the lines naming a release it
    still holds (protocol.log_of_releases): a few KB however old the host, and the same
    decisions (bad releases, the previous good one) as from the whole log."""
    denv.rb.commit(BASE, modes=BASE_MODES)
    a = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    b = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v3')\n"})
    c = denv.deploy()
    log = denv.root / ".gatebot/deploy.jsonl"
    gone = [
        {"ts": "t", "event": e, "release": f"20200101T{i // 60 % 24:02d}{i % 60:02d}00Z-{i:07x}"}
        for i in range(3000)
        for e in ("release", "switch")
    ]
    with log.open("a") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in gone)
        fh.write(json.dumps({"ts": "t", "event": "bad", "release": b.release, "ok": False}) + "\n")
    answer = fsops.op_inspect(Inspect(str(denv.root)))
    sent = answer.log.splitlines()
    assert len(log.read_text()) > 300_000 and len(answer.log) < 5_000
    assert sent and all(any(r in x for r in (a.release, b.release, c.release)) for x in sent)
    assert sent[-1] == json.dumps({"ts": "t", "event": "bad", "release": b.release, "ok": False})
    back = denv.rollback()  # over sshd: b is bad, so a
    assert back.ok, back.error
    assert denv.live() == a.release


def test_retention_keeps_n_and_prunes_unused_venvs(denv: DeployEnv) -> None:
    denv.overrides["keep_releases"] = 2
    ids = []
    for i in range(4):
        denv.rb.commit({**BASE, "requirements.txt": f"# {i}\n"}, modes=BASE_MODES)
        r = denv.deploy()
        assert r.ok, r.error
        ids.append(r.release)
    left = denv.releases()
    assert left == sorted(ids[-2:])
    denv.wait_deleted()
    venvs = sorted(p.name for p in (denv.root / "venvs").iterdir())
    assert len(venvs) == 2
    assert any(e["event"] == "prune" for e in denv.log_events())


def test_pruned_releases_are_deleted_off_the_deploys_time(denv: DeployEnv) -> None:
    """Retention renames what it prunes out of the way (one rename per directory: gone from
    `releases` and every listing when the deploy ends) and a detached host process deletes
    it, with what an earlier, killed deleter left in the same directory."""
    from bot.deploy.hostside.protocol import TRASH_PREFIX

    denv.overrides["keep_releases"] = 2
    denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    assert first.ok, first.error
    # What a deleter killed half way (a reboot) would have left: a partial tree.
    left_over = denv.root / "releases" / f"{TRASH_PREFIX}20200101T000000Z-0000000.abc"
    (left_over / "app").mkdir(parents=True)
    (left_over / "app" / "main.py").write_text("old\n")
    # Not a release, not a venv: the host's state never lists it (`gatebot releases`).
    rows, state = asyncio.run(flow.list_releases(denv.ctx(), "inf"))
    assert [row.release for row in rows] == [first.release]
    assert sorted(state.markers) == [first.release]
    made = []
    for i in range(2):
        denv.rb.commit({"app/main.py": f"print({i})\n"})
        r = denv.deploy()
        assert r.ok, r.error
        made.append(r.release)
    # The two newest are kept; the first was set aside before the deploy returned.
    assert denv.releases() == sorted(made)
    denv.wait_deleted()
    assert not left_over.exists()
    assert any(e["event"] == "prune" and first.release in e["detail"] for e in denv.log_events())


def test_shared_entries_are_linked_and_survive_releases(denv: DeployEnv) -> None:
    denv.overrides["shared"] = ["logs", "var/data"]
    denv.rb.commit({**BASE, "logs/.keep": ""}, modes=BASE_MODES)
    first = denv.deploy()
    assert first.ok, first.error
    rel = _release(denv, first.release)
    assert os.readlink(rel / "logs") == "../../shared/logs"
    assert os.readlink(rel / "var/data") == "../../../shared/var/data"
    (denv.current / "logs" / "app.log").write_text("kept\n")
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    second = denv.deploy()
    assert second.ok, second.error
    assert (denv.current / "logs" / "app.log").read_text() == "kept\n"


def test_dry_run_changes_nothing(denv: DeployEnv) -> None:
    import asyncio

    from bot.deploy import flow
    from bot.deploy.manifest import build_manifest

    denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    ctx = denv.ctx()
    report = asyncio.run(
        flow.deploy(ctx, ["inf"], build_manifest(denv.rb.path, "main"), dry_run=True)
    )
    host = report.hosts[0]
    assert host.ok and host.status == "dry-run" and host.files_reused == 6
    assert "would send 1 files" in denv.out.getvalue() and "send app/main.py" in denv.out.getvalue()
    assert denv.live() == first.release
    assert len(denv.releases()) == 1


def test_failing_restart_rolls_back_automatically(denv: DeployEnv) -> None:
    # The restart runs inside `current`: it fails only for a release that carries this file.
    denv.overrides["restart"] = "test ! -e BROKEN && echo restarted >> ../../restarts.log"
    denv.rb.commit(BASE, modes=BASE_MODES)
    good = denv.deploy()
    assert good.ok, good.error
    denv.rb.commit({"BROKEN": "yes\n"})
    bad = denv.deploy()
    assert not bad.ok
    assert bad.status == "auto-rolled-back" and bad.live == good.release
    assert f"{good.release} is live" in (bad.error or "")
    assert denv.live() == good.release
    events = denv.log_events()
    assert [e["event"] for e in events[-3:]] == ["switch", "rollback", "bad"]
    assert events[-1]["release"] == bad.release
    # restarted for the good release, then again after the rollback
    assert (denv.root / "restarts.log").read_text().count("restarted") == 2
    with pytest.raises(DeployFailed, match="is live"):
        from bot.deploy.flow import raise_for_failures
        from bot.deploy.report import RolloutReport

        raise_for_failures(RolloutReport(op="deploy", ok=False, hosts=[bad]))


def test_failed_audit_rolls_back_and_reports_both_audits(denv: DeployEnv) -> None:
    denv.rb.commit({**BASE, "appmod.py": "VALUE = 1\n"}, modes=BASE_MODES)
    config = denv.config(audit={"min_free_disk_mb": 0, "imports": ["appmod"]})
    good = denv.deploy(ctx=denv.ctx(config, audit=True))
    assert good.ok, good.error
    assert good.audit is not None and good.audit["passed"] is True
    denv.rb.commit({"appmod.py": None})
    bad = denv.deploy(ctx=denv.ctx(config, audit=True))
    assert not bad.ok
    assert bad.status == "auto-rolled-back" and denv.live() == good.release
    assert bad.audit is not None and bad.audit["passed"] is False
    assert bad.rollback_audit is not None and bad.rollback_audit["passed"] is True
    assert "audit failed at imports" in (bad.error or "")
    assert any(e["event"] == "bad" and e["release"] == bad.release for e in denv.log_events())


def test_rollout_stops_when_failures_exceed_the_percentage(denv: DeployEnv) -> None:
    from tests.fakes.sshd import free_port

    denv.rb.commit(BASE, modes=BASE_MODES)
    targets = {
        "a-down": denv.target_data(port=free_port(), path=str(denv.tmp / "host" / "a")),
        "b-up": denv.target_data(path=str(denv.tmp / "host" / "b")),
        "c-up": denv.target_data(path=str(denv.tmp / "host" / "c")),
    }
    stop = denv.config(targets, rollout={"batch_size": 1, "max_fail_percentage": 0})
    report = denv.deploy_all(["a-down", "b-up", "c-up"], ctx=denv.ctx(stop))
    assert [h.status for h in report.hosts] == ["failed", "skipped", "skipped"]
    assert "cannot connect" in (report.hosts[0].error or "")
    assert not (denv.tmp / "host" / "b").exists()
    # Tolerating one failure in three, in a batch of two: everything is attempted.
    tolerant = denv.config(targets, rollout={"batch_size": 2, "max_fail_percentage": 34})
    report = denv.deploy_all(["a-down", "b-up", "c-up"], ctx=denv.ctx(tolerant))
    assert [h.status for h in report.hosts] == ["failed", "deployed", "deployed"]
    assert (denv.tmp / "host" / "c" / "current").is_symlink()


def test_files_edited_on_the_host_are_repaired_in_the_new_release(denv: DeployEnv) -> None:
    denv.rb.commit(BASE, modes=BASE_MODES)
    first = denv.deploy()
    edited = _release(denv, first.release) / "README"
    # Someone edits the live release in place; the git-based plan cannot know.
    os.chmod(edited, 0o644)
    edited.write_text("hotfix by hand\n")
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert "repairing drift" in denv.out.getvalue() and "README" in denv.out.getvalue()
    assert (denv.current / "README").read_text() == "hello\n"
    assert r.files_sent == 2  # the change, then the repaired file
    assert edited.read_text() == "hotfix by hand\n"  # the old release is left as it is
