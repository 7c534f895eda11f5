"""The next release's seed, prepared on the host in the background after each deploy.

After a deploy or rollback the host links `releases/.next-<live>` from the live release in a
detached process; the next deploy takes it with one rename instead of linking every file while
the user waits. These tests run real deploys over the loopback sshd and look at the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DeployEnv

TREE = {
    "app/main.py": "print('v1')\n",
    "app/util.py": "X = 1\n",
    "docs/guide.md": "# guide\n",
    "requirements.txt": "",
}


def test_the_next_deploy_starts_from_the_prepared_seed(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    assert first.ok, first.error
    denv.wait_prepared([f".next-{first.release}"])
    live = denv.root / "releases" / str(first.release)
    ready = denv.root / "releases" / f".next-{first.release}"
    # Hard links of the live files, without gatebot's own entries.
    assert os.stat(ready / "app/util.py").st_ino == os.stat(live / "app/util.py").st_ino
    assert sorted(str(p.relative_to(ready)) for p in ready.rglob("*") if p.is_file()) == sorted(
        TREE
    )

    denv.rb.commit({"app/util.py": "X = 2\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert f"seeded from the copy of {first.release}" in denv.out.getvalue()
    assert (denv.current / "app/util.py").read_text() == "X = 2\n"
    assert (live / "app/util.py").read_text() == "X = 1\n"  # the old release is untouched
    assert r.files_sent == 1 and r.files_hashed == 0
    # The prepared seed became the release; the next one is prepared from the new live one.
    denv.wait_prepared([f".next-{r.release}"])
    assert denv.releases() == sorted([str(first.release), str(r.release)])


def test_drift_in_a_prepared_seed_is_repaired(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    denv.wait_prepared([f".next-{first.release}"])
    ready = denv.root / "releases" / f".next-{first.release}"
    # Someone (or something) wrote into the prepared copy: a replaced file and an extra one.
    (ready / "docs/guide.md").unlink()
    (ready / "docs/guide.md").write_text("# edited by hand\n")
    (ready / "stray.txt").write_text("not in git\n")
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert "seeded from the copy" in denv.out.getvalue()
    assert "repairing drift" in denv.out.getvalue()
    assert (denv.current / "docs/guide.md").read_text() == "# guide\n"
    assert not (denv.current / "stray.txt").exists()


def test_rollback_prepares_from_the_release_it_brings_back(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    second = denv.deploy()
    denv.wait_prepared([f".next-{second.release}"])
    back = denv.rollback()
    assert back.ok and back.live == first.release
    # The seed prepared for the release that is no longer live is swept.
    denv.wait_prepared([f".next-{first.release}"])


def test_leftovers_of_a_preparation_that_died_are_swept(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    denv.wait_prepared([f".next-{first.release}"])
    releases = denv.root / "releases"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    (releases / f".next-{first.release}.tmp-{dead}" / "app").mkdir(parents=True)
    # One still being prepared by a live process (this test's own pid) is left alone.
    running = releases / f".next-{first.release}.tmp-{os.getpid()}"
    running.mkdir()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert not (releases / f".next-{first.release}.tmp-{dead}").exists()
    assert running.is_dir()
    running.rmdir()
    denv.wait_prepared([f".next-{r.release}"])


def test_prepare_next_off_leaves_nothing_behind(denv: DeployEnv) -> None:
    denv.overrides["prepare_next"] = False
    denv.rb.commit(TREE)
    denv.deploy()
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert "seeded from the copy" not in denv.out.getvalue()
    denv.wait_prepared([])


def test_a_sweep_that_meets_another_one_is_not_an_error(tmp_path: Path) -> None:
    from bot.deploy.hostside import fsops as agent_script

    gone = tmp_path / ".next-x"
    (gone / "a" / "b").mkdir(parents=True)
    agent_script.rmtree_vanished_ok(str(gone))
    assert not gone.exists()
    agent_script.rmtree_vanished_ok(str(gone))  # removed by "the other sweep": fine
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(NotADirectoryError):  # any other failure is one
        agent_script.rmtree_vanished_ok(str(not_a_dir))
