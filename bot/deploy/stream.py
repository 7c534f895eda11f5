"""The upload stream: the records the host helper unpacks (bot/deploy/hostside/upload.py).

One record per file or symlink: kind (F file, L symlink, D deletions, E end), mode, payload
size, path length, then the path and the payload. No block padding: a 16 kB file costs 16 kB
plus 15 bytes and its path on the wire.

`chunks` builds the stream in ~1 MB pieces, each sent as one frame on the agent channel.
(Building it in a child process, so that inflating blobs in pygit2, which holds the GIL, runs
beside the SSH channel, was measured slower on a 2-core machine where the host's side of the
upload needs the other core.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from bot.deploy.hostside.protocol import RECORD
from bot.deploy.manifest import ManifestEntry, read_blob
from bot.errors import DeployFailed

if TYPE_CHECKING:
    import pygit2

CHUNK = 1 << 20  # bytes buffered before a piece is handed on


def _path_bytes(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise DeployFailed(f"path too long to upload ({len(raw)} bytes): {path[:80]}...")
    return raw


def record(kind: bytes, mode: int, payload_size: int, path: str = "") -> bytes:
    raw = _path_bytes(path) if path else b""
    return RECORD.pack(kind, mode, payload_size, len(raw)) + raw


def skip_read_hashing() -> None:
    """Have libgit2 stop hashing every object it reads back (strict hash verification, on by
    default: SHA-1 with collision detection over each blob, about two thirds of the client's
    CPU when 100 MB are uploaded). Nothing is lost for a deploy: the host hashes every byte it
    writes and the check before going live compares those ids with the git tree, so a corrupt
    local object fails the deploy there (bot/deploy/steps/build.py) instead of here. Process
    wide; only deploy commands call it."""
    import pygit2
    from pygit2.enums import Option

    pygit2.option(Option.ENABLE_STRICT_HASH_VERIFICATION, False)


def chunks(
    repo: pygit2.Repository, delete: Iterable[str], send: Iterable[ManifestEntry]
) -> Iterator[bytes]:
    """The whole stream for a plan, in pieces of about CHUNK bytes (a big blob in slices:
    memory stays one blob plus the buffer)."""
    skip_read_hashing()
    buf = bytearray()
    gone = list(delete)
    if gone:
        data = json.dumps(gone).encode("utf-8", "surrogateescape")
        buf += record(b"D", 0, len(data)) + data
    for entry in send:
        if entry.is_link:
            target = (entry.link_target or "").encode("utf-8", "surrogateescape")
            buf += record(b"L", 0, len(target), entry.path) + target
        else:
            data = read_blob(repo, entry.oid)
            buf += record(b"F", 0o755 if entry.executable else 0o644, len(data), entry.path)
            view = memoryview(data)
            for i in range(0, len(view), CHUNK):
                buf += view[i : i + CHUNK]
                if len(buf) >= CHUNK:
                    yield bytes(buf)
                    buf.clear()
        if len(buf) >= CHUNK:
            yield bytes(buf)
            buf.clear()
    buf += record(b"E", 0, 0)
    yield bytes(buf)
