"""The upload stream: what `bot.deploy.stream` writes, the host helper's op_extract unpacks.

Both ends run here for real (the host helper is plain Python): a stream built from a pygit2
repository is framed as the agent channel frames it and unpacked into a directory.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pygit2
import pytest

from bot.deploy import stream
from bot.deploy.hostside import tree, upload
from bot.deploy.hostside.protocol import Extract
from bot.deploy.manifest import MODE_EXEC, MODE_LINK, build_manifest
from tests.gitrepo import RepoBuilder


def _framed(pieces: list[bytes], *, end: bool = True) -> io.BytesIO:
    out = io.BytesIO()
    for piece in pieces:
        out.write(len(piece).to_bytes(4, "big") + piece)
    if end:
        out.write(b"\0\0\0\0")
    out.seek(0)
    return out


def _unpack(root: Path, data: io.BytesIO, fresh: bool = False) -> dict[str, int]:
    result: dict[str, int] = upload.op_extract(
        Extract(str(root), fresh), upload.FrameReader(data)
    )._asdict()
    return result


def test_a_stream_round_trips_files_links_modes_and_deletions(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    big = os.urandom(3 * stream.CHUNK + 17)  # crosses several pieces
    rb.commit(
        {"big.bin": big, "bin/run": "#!/bin/sh\n", "d/link": "../big.bin", "empty": ""},
        modes={"bin/run": MODE_EXEC, "d/link": MODE_LINK},
    )
    manifest = build_manifest(rb.path, "main")
    root = tmp_path / "release"
    (root / "old").mkdir(parents=True)
    (root / "old" / "gone.txt").write_text("x")
    repo = pygit2.Repository(str(rb.path))
    pieces = list(stream.chunks(repo, ["old/gone.txt"], manifest.entries))
    assert all(len(p) <= stream.CHUNK + 64 * 1024 for p in pieces) and len(pieces) >= 3
    # Nothing but the records: the contents plus a header and path per entry.
    overhead = sum(len(p) for p in pieces) - len(big) - len("#!/bin/sh\n") - len("../big.bin")
    assert overhead < 200

    assert _unpack(root, _framed(pieces)) == {"written": 4, "deleted": 1}
    assert (root / "big.bin").read_bytes() == big
    assert os.stat(root / "bin/run").st_mode & 0o777 == 0o755
    assert os.stat(root / "big.bin").st_mode & 0o777 == 0o644
    assert os.readlink(root / "d/link") == "../big.bin"
    assert (root / "empty").read_bytes() == b""
    assert not (root / "old").exists()  # emptied directories go too, as git keeps none
    # Each file's git id was taken from the bytes as they were written.
    written = tree.WRITTEN[str(root)]
    assert written["big.bin"][0] == str(pygit2.hash(big))
    assert written["big.bin"][2] == os.stat(root / "big.bin").st_ino


def test_a_path_that_exists_is_replaced_by_a_new_inode(tmp_path: Path) -> None:
    """A seeded file is a hard link shared with an older release: never written in place."""
    older = tmp_path / "older"
    older.mkdir()
    (older / "a.txt").write_text("old\n")
    root = tmp_path / "release"
    root.mkdir()
    os.link(older / "a.txt", root / "a.txt")
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.txt": "new\n"})
    entries = build_manifest(rb.path, "main").entries
    _unpack(root, _framed(list(stream.chunks(pygit2.Repository(str(rb.path)), [], entries))))
    assert (root / "a.txt").read_text() == "new\n"
    assert (older / "a.txt").read_text() == "old\n"
    assert os.stat(older / "a.txt").st_nlink == 1


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../../b", "a//b", "a/./b"])
def test_an_unsafe_path_in_a_stream_is_refused(tmp_path: Path, name: str) -> None:
    raw = name.encode()
    bad = stream.RECORD.pack(b"F", 0o644, 1, len(raw)) + raw + b"x"
    end = stream.record(b"E", 0, 0)
    with pytest.raises(ValueError, match="unsafe path"):
        _unpack(tmp_path / "r", _framed([bad + end]))
    assert not (tmp_path / "escape").exists() and not Path("/abs").exists()


def test_a_cut_or_foreign_stream_is_an_error_not_a_partial_success(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"a.txt": "a" * 5000})
    entries = build_manifest(rb.path, "main").entries
    whole = b"".join(stream.chunks(pygit2.Repository(str(rb.path)), [], entries))
    with pytest.raises(EOFError, match="cut"):
        _unpack(tmp_path / "r1", _framed([whole[:2000]], end=False))
    with pytest.raises(EOFError, match="cut"):
        _unpack(tmp_path / "r2", _framed([whole[: -len(stream.record(b"E", 0, 0))]]))
    unknown = stream.record(b"X", 0, 0, "a.txt") + stream.record(b"E", 0, 0)
    with pytest.raises(ValueError, match="unknown record"):
        _unpack(tmp_path / "r3", _framed([unknown]))
    # A write that was cut leaves no partial file behind.
    assert not any(stat.S_ISREG(os.lstat(p).st_mode) for p in (tmp_path / "r1").rglob("*"))
