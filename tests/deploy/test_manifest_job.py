"""The manifest read by a forked child (bot/deploy/manifest_job.py): the commit's id first, then
the manifest, errors as the same exceptions, and a child stopped when nobody needs it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.deploy.manifest import MODE_LINK, build_manifest
from bot.deploy.manifest_job import ManifestJob
from bot.errors import DeployFailed, UsageError
from tests.gitrepo import RepoBuilder


def test_the_child_sends_the_commit_then_the_same_manifest(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    sha = rb.commit({"a.py": "1\n", "lib/b.py": "2\n"})
    job = ManifestJob.start(rb.path, "main")
    assert job.sha() == sha
    assert job.manifest() == build_manifest(rb.path, "main")
    assert job._pid is None  # reaped


def test_errors_come_back_as_the_same_exceptions(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.py": "1\n", "evil": "../../etc/passwd"}, modes={"evil": MODE_LINK})
    with pytest.raises(UsageError, match="nope") as info:
        ManifestJob.start(rb.path, "nope").sha()
    assert info.value.hint  # the hint travels too
    job = ManifestJob.start(rb.path, "main")
    job.sha()
    with pytest.raises(DeployFailed, match="points outside the release"):
        job.manifest()


def test_a_manifest_nobody_needs_stops_its_child(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({f"f{i}.txt": f"{i}\n" for i in range(200)})
    job = ManifestJob.start(rb.path, "main")
    job.sha()
    pid = job._pid
    assert pid is not None
    job.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left
    job.cancel()  # twice is fine
