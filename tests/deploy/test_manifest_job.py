"""The manifest read by a forked child (bot/deploy/manifest_job.py): the commit's id first, then
the manifest, errors as the same exceptions, and a child stopped when nobody needs it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pygit2
import pytest

from bot.deploy import blobsizes
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
    job.cancel()
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


def test_the_blob_sizes_are_remembered_in_the_git_dir_and_used(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.py": "1\n", "lib/b.py": "22\n"})
    job = ManifestJob.start(rb.path, "main")
    first = job.manifest()
    job.cancel()  # waits for the child to write the sizes
    git_dir = pygit2.Repository(str(rb.path)).path
    assert blobsizes.load(git_dir) == {e.oid: e.size for e in first}
    # The next manifest takes the sizes it finds there (here one made wrong on purpose) ...
    a = first.get("a.py")
    assert a is not None
    assert build_manifest(rb.path, "main", {a.oid: 99}).get("a.py") == replace(a, size=99)
    # ... reads the new blob's from git, and the file then holds the new tree's blobs only.
    rb.commit({"a.py": "333\n"})
    job = ManifestJob.start(rb.path, "main")
    second = job.manifest()
    job.cancel()
    assert second == build_manifest(rb.path, "main")
    assert blobsizes.load(git_dir) == {e.oid: e.size for e in second}
    assert a.oid not in blobsizes.load(git_dir)


def test_a_broken_sizes_file_is_no_cache_line_by_line(tmp_path: Path) -> None:
    path = blobsizes.cache_path(tmp_path)
    path.parent.mkdir()
    for bad in (b"", b"not the header\nabc 1\n", blobsizes.HEADER.encode() + b"\xff 1\n"):
        path.write_bytes(bad)
        assert blobsizes.load(tmp_path) == {}
    path.write_text(
        blobsizes.HEADER + "good 12\nnosize\nneg -1\nfloat 1.5\nhuge 12345678901234567890\n"
        "spaced  3\nlast 0"
    )
    assert blobsizes.load(tmp_path) == {"good": 12, "last": 0}
    path.write_bytes(blobsizes.HEADER.encode() + b"x 1\n" * (blobsizes.MAX_BYTES // 4 + 1))
    assert blobsizes.load(tmp_path) == {}  # too large to be ours: not read


def test_sizes_that_cannot_be_written_are_said_not_fatal(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.py": "1\n"})
    (Path(pygit2.Repository(str(rb.path)).path) / "gatebot").write_text("in the way")
    said: list[str] = []
    job = ManifestJob.start(rb.path, "main")
    job.warn = said.append
    assert job.manifest() == build_manifest(rb.path, "main")
    job.cancel()
    assert len(said) == 1 and said[0].startswith("could not remember blob sizes in ")
