"""The host's hash index: a release is checked against git without re-reading unchanged files.

Each deploy checks the whole new release on the host before it goes live. With `verify: index`
(the default) the host knows the ids of the files it wrote (hashed from the bytes as they were
written) and of the files the seed hard-linked from the live release (its index, for the same
inode, size and mtime), and reads only the rest; `verify: full` reads every file. These tests
run real deploys over the loopback sshd and look at what the host really read.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pygit2

from bot.deploy.hostside import tree as agent_script
from tests.deploy.conftest import DeployEnv

TREE = {
    "app/main.py": "print('v1')\n",
    "app/util.py": "X = 1\n",
    "README": "hello\n",
    "data/blob.bin": bytes(range(256)) * 40,
    "requirements.txt": "",
}
FILES = len(TREE)


def _release(denv: DeployEnv, rid: str | None) -> Path:
    assert rid is not None
    return denv.root / "releases" / rid


def _index(denv: DeployEnv, rid: str | None) -> dict[str, list[object]]:
    data = json.loads((_release(denv, rid) / ".gatebot-index.json").read_text())
    assert data["version"] == 1
    files: dict[str, list[object]] = data["files"]
    return files


def test_one_change_reads_no_file_on_the_host(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    assert first.ok, first.error
    # Every file of the first release was hashed from the bytes as they were written.
    assert (first.files_hashed, first.files_hash_known) == (0, FILES)
    index = _index(denv, first.release)
    assert sorted(index) == sorted(TREE)
    blob = _release(denv, first.release) / "data/blob.bin"
    st = os.stat(blob)
    assert index["data/blob.bin"][1:] == [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    # The id recorded is git's blob id of the content.
    assert index["app/util.py"][0] == _git_blob_id(b"X = 1\n")

    denv.rb.commit({"app/util.py": "X = 2\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert r.files_sent == 1
    # The changed file was hashed as written; the four hard links kept the live release's ids.
    assert (r.files_hashed, r.files_hash_known) == (0, FILES)
    assert _index(denv, r.release)["app/util.py"][0] == _git_blob_id(b"X = 2\n")
    assert "hashed on host" in _summary(r)


def test_a_same_size_edit_in_the_live_release_is_read_and_repaired(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    edited = _release(denv, first.release) / "README"
    before = os.stat(edited)
    edited.write_text("HELLO\n")  # same size, in place: the seed links this very inode
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    denv.rb.commit({"app/main.py": "print('v2')\n"})
    r = denv.deploy()
    assert r.ok, r.error
    # Its mtime no longer matches the index: the host read it, found the drift, repaired it.
    assert r.files_hashed >= 1
    assert "repairing drift" in denv.out.getvalue() and "README" in denv.out.getvalue()
    assert (denv.current / "README").read_text() == "hello\n"


def test_full_verify_catches_an_edit_that_kept_size_and_mtime(denv: DeployEnv) -> None:
    """The documented limit of `verify: index` (it trusts inode, size and mtime, as git and
    rsync's quick check do), and the setting that closes it."""
    denv.rb.commit(TREE)
    first = denv.deploy()
    edited = _release(denv, first.release) / "README"
    before = os.stat(edited)
    edited.write_text("HELLO\n")
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))

    denv.rb.commit({"app/main.py": "print('v2')\n"})
    quick = denv.deploy()
    assert quick.ok and quick.files_hashed == 0
    assert (denv.current / "README").read_text() == "HELLO\n"  # not seen: same inode state

    denv.rb.commit({"app/main.py": "print('v3')\n"})
    full = denv.deploy(ctx=denv.ctx(denv.config({"inf": denv.target_data(verify="full")})))
    assert full.ok, full.error
    assert "repairing drift" in denv.out.getvalue()
    # Every file read twice: the check that found the drift, and the one after the repair.
    assert full.files_hashed == 2 * FILES and full.files_hash_known == 0
    tree_bytes = sum(len(v) if isinstance(v, bytes) else len(v.encode()) for v in TREE.values())
    tree_bytes += len("print('v3')\n") - len("print('v1')\n")
    assert full.bytes_hashed == 2 * tree_bytes
    assert (denv.current / "README").read_text() == "hello\n"


def test_a_corrupt_local_object_never_goes_live(denv: DeployEnv) -> None:
    """The upload reads blobs without libgit2 re-hashing them (bot/deploy/stream.py): a local
    object whose bytes are not what its id says is caught by the host's check, which hashes
    what was written, and the deploy fails before `current` moves."""
    denv.rb.commit(TREE)
    first = denv.deploy()
    assert first.ok, first.error
    good = b"X = 2\n"
    denv.rb.commit({"app/util.py": good})
    oid = _git_blob_id(good)
    loose = denv.rb.path / ".git" / "objects" / oid[:2] / oid[2:]
    loose.chmod(0o644)
    bad = b"X = 9\n"  # same size: only a hash of the bytes tells them apart
    loose.write_bytes(zlib.compress(b"blob %d\0" % len(bad) + bad))
    r = denv.deploy()
    assert not r.ok
    assert "does not match the git tree after upload" in (r.error or "")
    assert "app/util.py" in (r.error or "")
    assert denv.live() == first.release
    assert (denv.current / "app/util.py").read_text() == "X = 1\n"


def test_a_corrupt_or_foreign_index_is_no_index(denv: DeployEnv) -> None:
    denv.rb.commit(TREE)
    first = denv.deploy()
    index = _release(denv, first.release) / ".gatebot-index.json"
    for bad in ("{not json", json.dumps({"version": 2, "files": {}}), json.dumps([1, 2])):
        index.write_text(bad)
        denv.rb.commit({"app/main.py": f"print({bad!r})\n"})
        r = denv.deploy()
        assert r.ok, r.error
        # The four seeded files were read again; the uploaded one was known from its write.
        assert (r.files_hashed, r.files_hash_known) == (FILES - 1, 1)
        index = _release(denv, r.release) / ".gatebot-index.json"


def test_load_index_keeps_only_well_formed_entries_older_than_the_index(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    files = {
        "ok": ["a" * 40, 1, 2, 3, 10],
        "racy": ["b" * 40, 1, 2, 3, 10**30],  # recorded "after" the index was written
        "short": ["c" * 40, 1, 2],
        "bool": ["d" * 40, True, 2, 3, 10],
        "str-ino": ["e" * 40, 1, "2", 3, 10],
        "not-a-list": {"oid": "f" * 40},
    }
    path.write_text(json.dumps({"version": 1, "files": files}))
    assert agent_script.load_index(str(path)) == {"ok": ["a" * 40, 1, 2, 3, 10]}
    assert agent_script.load_index(str(tmp_path / "missing.json")) == {}


def test_write_index_leaves_no_entry_racy(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    st = os.stat(f)
    entry = [_git_blob_id(b"x"), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    agent_script.write_index(str(tmp_path / "index.json"), {"f": entry})
    # Written in the same clock tick as the file, the index is touched until it is newer.
    assert agent_script.load_index(str(tmp_path / "index.json")) == {"f": entry}


def _git_blob_id(data: bytes) -> str:
    return str(pygit2.hash(data))


def _summary(report: object) -> str:
    import io

    from bot.deploy.progress import print_summary
    from bot.deploy.report import HostReport

    assert isinstance(report, HostReport)
    out = io.StringIO()
    print_summary([report], out)
    return out.getvalue()


def test_the_host_digest_of_a_release_equals_the_manifest_digest(denv: DeployEnv) -> None:
    """A check that matches is settled by one digest from the host (no listing travels): the
    host's digest must be computed exactly as Manifest.digest, or every check falls back."""
    from bot.deploy.integrity import _digest_of
    from bot.deploy.layout import integrity_excludes
    from bot.deploy.manifest import build_manifest

    denv.rb.commit(
        {**TREE, "bin/run": "#!/bin/sh\n", "link": "app/main.py", "ünï.txt": "u\n"},
        modes={"bin/run": 0o100755, "link": 0o120000},
    )
    r = denv.deploy()
    assert r.ok, r.error
    excl = integrity_excludes(())
    listing = agent_script.hash_tree(str(_release(denv, r.release)), list(excl))
    manifest = build_manifest(denv.rb.path, "main")
    assert agent_script.listing_digest(listing) == _digest_of(manifest, excl)
    listing["README"] = [0o100644, "0" * 40, 6]
    assert agent_script.listing_digest(listing) != _digest_of(manifest, excl)


def test_a_live_commit_missing_locally_is_planned_from_the_host(denv: DeployEnv) -> None:
    """A checkout without the live commit (a shallow clone, another repository) cannot diff
    the two trees: the plan comes from the host's listing of the seed, whose ids its index
    already holds, and still only the changed file travels."""
    from tests.gitrepo import RepoBuilder

    denv.rb.commit(TREE)
    assert denv.deploy().ok
    other = RepoBuilder(denv.tmp / "other")
    other.commit({**TREE, "app/util.py": "X = 3\n"}, message="unrelated history")
    denv.rb = other
    r = denv.deploy()
    assert r.ok, r.error
    assert r.files_sent == 1 and r.files_reused == FILES - 1
    assert (denv.current / "app/util.py").read_text() == "X = 3\n"
