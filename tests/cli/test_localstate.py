"""Folders gatebot creates in a working tree ignore themselves; existing folders are left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pygit2

from bot.localstate import claim
from tests.gitrepo import RepoBuilder


def test_a_created_folder_ignores_itself_and_an_existing_one_is_untouched(tmp_path: Path) -> None:
    made = claim(tmp_path / "a" / "state")
    assert (made / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not (tmp_path / "a" / ".gitignore").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    claim(mine)
    assert not (mine / ".gitignore").exists()


def test_git_add_after_a_local_review_commits_no_state(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.py": "x = 1\n"})
    rb.commit({"a.py": "x = 2\n"})
    repo = pygit2.Repository(str(rb.path))
    repo.checkout_head(strategy=pygit2.enums.CheckoutStrategy.FORCE)
    run = subprocess.run(
        [sys.executable, "-m", "bot", "review", "--base", "HEAD~1", "--head", "HEAD"],
        cwd=rb.path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert (rb.path / "gatebot-out" / "verdict.json").exists()
    assert (rb.path / ".gatebot-cache" / ".gitignore").exists()
    repo.index.add_all()
    staged = {e.path for e in repo.index}
    assert staged == {"a.py"}, staged
