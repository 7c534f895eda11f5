"""bot.git: real pygit2 repositories in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from bot.errors import UsageError
from bot.git import blobs
from bot.git.attributes import attribute_set, may_have_attributes
from bot.git.diff import change_range, diff_changes, diff_files, open_repo, resolve_commit
from tests.gitrepo import RepoBuilder

LONG = "".join(f"line {i}\n" for i in range(40))


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo")


def _by_path(rb: RepoBuilder, base: str = "main", head: str = "feature", ctx: int = 3):
    repo = open_repo(rb.path)
    rng = change_range(repo, base, head)
    return {c.path: c for c in diff_changes(repo, rng.merge_base_sha, rng.head_sha, ctx)}


def test_kinds_renames_modes_binary(rb: RepoBuilder) -> None:
    base = rb.commit(
        {
            "a.py": "x = 1\ny = 2\n",
            "old/name.py": LONG,
            "gone.txt": "bye\n",
            "bin.dat": b"\x00\x01\x02",
            "run.sh": "echo hi\n",
        }
    )
    rb.commit(
        {
            "a.py": "x = 1\ny = 3\n",
            "old/name.py": None,
            "new/name.py": LONG + "extra\n",
            "gone.txt": None,
            "bin.dat": b"\x00\x01\x03",
            "run.sh": "echo hi\n",
            "new.py": "n = 1\n",
        },
        branch="feature",
        parents=[base],
        modes={"run.sh": 0o100755},
    )
    ch = _by_path(rb)
    assert set(ch) == {"a.py", "new/name.py", "gone.txt", "bin.dat", "run.sh", "new.py"}
    assert ch["a.py"].change == "modified" and ch["a.py"].changed_lines == {2}
    assert ch["new/name.py"].change == "renamed"
    assert ch["new/name.py"].old_path == "old/name.py"
    assert ch["new/name.py"].changed_lines == {41}
    assert ch["gone.txt"].change == "deleted" and ch["gone.txt"].new_oid is None
    assert ch["bin.dat"].binary and ch["bin.dat"].hunks == ()
    assert ch["run.sh"].old_mode == 0o100644 and ch["run.sh"].new_mode == 0o100755
    assert ch["run.sh"].old_oid == ch["run.sh"].new_oid
    assert ch["new.py"].change == "added" and ch["new.py"].old_oid is None
    assert ch["new.py"].new_size == len("n = 1\n")


def test_context_lines_and_hunk_render(rb: RepoBuilder) -> None:
    base = rb.commit({"f.txt": LONG})
    rb.commit({"f.txt": LONG.replace("line 20\n", "LINE 20\n")}, branch="feature", parents=[base])
    one = _by_path(rb, ctx=1)["f.txt"]
    five = _by_path(rb, ctx=5)["f.txt"]
    assert len(one.hunks[0].lines) == 4  # 1 context + removed + added + 1 context
    assert len(five.hunks[0].lines) == 12
    text = five.render_diff()
    assert text.startswith("@@ -16,11 +16,11 @@") and "-line 20\n+LINE 20\n" in text


def test_merge_base_excludes_later_base_commits(rb: RepoBuilder) -> None:
    base = rb.commit({"a.py": "a = 1\n"})
    rb.commit({"b.py": "b = 1\n"}, branch="feature", parents=[base])
    rb.commit({"main_only.py": "m = 1\n"})  # lands on main after the branch point
    repo = open_repo(rb.path)
    rng = change_range(repo, "main", "feature")
    assert rng.merge_base_sha == base and rng.base_sha != base
    assert [c.path for c in diff_changes(repo, rng.merge_base_sha, rng.head_sha)] == ["b.py"]


def test_resolve_refs(rb: RepoBuilder) -> None:
    first = rb.commit({"a": "1\n"})
    second = rb.commit({"a": "2\n"})
    repo = open_repo(rb.path)
    assert str(resolve_commit(repo, "main").id) == second
    assert str(resolve_commit(repo, "HEAD~1").id) == first
    assert str(resolve_commit(repo, first[:10]).id) == first
    with pytest.raises(UsageError, match="no-such-branch"):
        resolve_commit(repo, "no-such-branch")


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a git repository"):
        open_repo(tmp_path)


def test_unrelated_histories_are_a_usage_error(rb: RepoBuilder) -> None:
    rb.commit({"a": "1\n"})
    rb.commit({"b": "1\n"}, branch="orphan", parents=[])
    with pytest.raises(UsageError, match="no common ancestor"):
        change_range(open_repo(rb.path), "main", "orphan")


def test_blob_reading_is_bounded(rb: RepoBuilder) -> None:
    rb.commit({"t.txt": "héllo\n", "b.bin": b"ab\x00cd", "big.txt": "x" * 5000})
    repo = open_repo(rb.path)
    tree = repo.revparse_single("main").peel(pygit2.Commit).tree
    oid = {e.name: str(e.id) for e in tree}
    assert blobs.read_text(repo, oid["t.txt"], 100) == "héllo\n"
    assert blobs.read_text(repo, oid["b.bin"], 100) is None
    assert blobs.read_text(repo, oid["big.txt"], 4999) is None
    assert blobs.read_text(repo, oid["big.txt"], 5000) == "x" * 5000
    assert blobs.read_text(repo, None, 100) is None
    assert blobs.blob_size(repo, oid["big.txt"]) == 5000


def test_gitattributes_at_commit(rb: RepoBuilder) -> None:
    rb.commit({"x.py": "1\n"})
    head = rb.commit(
        {
            ".gitattributes": "gen/** linguist-generated\n*.txt linguist-vendored=true\n"
            "keep.py -linguist-generated\n",
            "sub/.gitattributes": "*.js linguist-generated\n",
        }
    )
    repo = open_repo(rb.path)
    assert attribute_set(repo, head, "gen/a.py", "linguist-generated")
    assert attribute_set(repo, head, "deep/n.txt", "linguist-vendored")
    assert attribute_set(repo, head, "sub/q.js", "linguist-generated")
    assert not attribute_set(repo, head, "keep.py", "linguist-generated")
    assert not attribute_set(repo, head, "x.py", "linguist-generated")
    first = rb.repo.revparse_single("HEAD~1").id
    assert not attribute_set(repo, str(first), "gen/a.py", "linguist-generated")


def test_attribute_guard_sees_nested_gitattributes(rb: RepoBuilder) -> None:
    head = rb.commit(
        {"a/b/.gitattributes": "*.py linguist-generated\n", "a/b/c/x.py": "1\n", "z.py": "1\n"}
    )
    repo = open_repo(rb.path)
    assert may_have_attributes(repo, head, ["a/b/c/x.py"])
    assert not may_have_attributes(repo, head, ["z.py", "a/q.py"])
    assert attribute_set(repo, head, "a/b/c/x.py", "linguist-generated")


def test_read_path_at_reads_the_commit_not_the_disk(rb: RepoBuilder) -> None:
    sha = rb.commit(
        {".github/gatebot.yml": "review: {}\n", "dir/x": "1\n", "link": "target"},
        modes={"link": 0o120000},
    )
    repo = open_repo(rb.path)
    assert blobs.read_path_at(repo, sha, ".github/gatebot.yml", 100) == b"review: {}\n"
    assert blobs.read_path_at(repo, sha, "missing.yml", 100) is None
    with pytest.raises(blobs.NotAFile):
        blobs.read_path_at(repo, sha, "dir", 100)
    with pytest.raises(blobs.NotAFile):
        blobs.read_path_at(repo, sha, "link", 100)
    with pytest.raises(ValueError, match="larger than 5 bytes"):
        blobs.read_path_at(repo, sha, ".github/gatebot.yml", 5)


def test_diff_files_reads_each_side_once_and_ignores_the_heads_attributes(
    rb: RepoBuilder,
) -> None:
    base = rb.commit({"a.py": "x = 1\n", "data.txt": "a\n", "big.txt": "b" * 100})
    rb.commit(
        {
            ".gitattributes": "*.txt -diff\n",
            "a.py": "x = 2\n",
            "data.txt": "b\n",
            "big.txt": "c" * 100,
        },
        branch="feature",
        parents=[base],
    )
    repo = open_repo(rb.path)
    rng = change_range(repo, "main", "feature")
    files = {f.change.path: f for f in diff_files(repo, rng.merge_base_sha, rng.head_sha, 3, 50)}
    assert (files["a.py"].old_data, files["a.py"].new_data) == (b"x = 1\n", b"x = 2\n")
    assert files["a.py"].change.changed_lines == {1} and not files["a.py"].change.binary
    # `-diff` is policy, read from the base by triage (bot.git.attributes); the head's own
    # .gitattributes never turns a text file into an unread "binary" one.
    assert not files["data.txt"].change.binary and files["data.txt"].change.changed_lines == {1}
    # Over keep_bytes: not kept in memory, but the size is known.
    assert files["big.txt"].new_data is None and files["big.txt"].change.new_size == 100


def test_submodule_pointers_diff_without_reading_blobs(rb: RepoBuilder) -> None:
    base = rb.commit({"a.py": "x = 1\n", "sub": "1" * 40}, modes={"sub": 0o160000})
    rb.commit(
        {"sub": "2" * 40, "newsub": "3" * 40},
        branch="feature",
        parents=[base],
        modes={"sub": 0o160000, "newsub": 0o160000},
    )
    repo = open_repo(rb.path)
    rng = change_range(repo, "main", "feature")
    files = {f.change.path: f for f in diff_files(repo, rng.merge_base_sha, rng.head_sha)}
    assert set(files) == {"sub", "newsub"}
    sub = files["sub"]
    assert (sub.old_data, sub.new_data, sub.change.new_mode) == (None, None, 0o160000)
    assert "Subproject commit" in sub.change.render_diff()


def test_blob_over_max_blob_bytes_is_neither_read_nor_diffed(rb: RepoBuilder) -> None:
    base = rb.commit({"a.py": "x = 1\n", "grown.txt": "small\n", "gone.txt": "z\n" * 100})
    rb.commit(
        {
            "a.py": "x = 2\n",
            "big.txt": "b\n" * 100,
            "edge.txt": "e" * 99 + "\n",
            "grown.txt": "g\n" * 60,
            "gone.txt": None,
        },
        branch="feature",
        parents=[base],
    )
    repo = open_repo(rb.path)
    rng = change_range(repo, "main", "feature")
    files = {
        f.change.path: f
        for f in diff_files(repo, rng.merge_base_sha, rng.head_sha, max_blob_bytes=100)
    }
    # Exactly at the limit is still diffed; the size of a skipped side comes from the header.
    for path, size in [("big.txt", 200), ("grown.txt", 120), ("gone.txt", 200)]:
        f = files[path]
        assert f.too_large and (f.old_data, f.new_data) == (None, None), path
        assert f.change.hunks == () and max(f.change.old_size, f.change.new_size) == size
    assert (
        files["grown.txt"].change.old_size == 6 and files["grown.txt"].change.change == "modified"
    )
    assert files["gone.txt"].change.change == "deleted"
    a = files["a.py"]
    assert not a.too_large and a.change.changed_lines == {1} and a.new_data == b"x = 2\n"
    edge = files["edge.txt"]
    assert not edge.too_large and edge.change.new_size == 100 and edge.change.changed_lines == {1}
