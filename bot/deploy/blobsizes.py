"""Blob sizes remembered between deploys, so listing a commit's tree reads no blob headers.

A manifest entry carries each file's size (bot/deploy/manifest.py). Reading it from git means
one object header per file: for 10,000 loose objects about 0.1 s, most of the time a deploy's
manifest takes (bot/deploy/manifest_job.py). A blob id never changes size, so the sizes of the
last manifest are kept in the repository's git directory, `<git dir>/gatebot/blob-sizes`, one
`<blob id> <size>` per line, and the next manifest reads only the blobs it does not find there.

The file is a cache, not a source of truth. A wrong size cannot put a wrong tree live: the size
is part of every manifest line, the host computes its listing from the bytes it holds (the git
blob id covers the size too), and the check before going live compares mode, id and size of
every file (bot/deploy/integrity.py `compare`), so the deploy fails there. `check_sizes` then
names the cache and removes it, and the next deploy reads the sizes from git. A missing,
unreadable or malformed file, or a line that is not `<id> <digits>`, is no entry: the size is
read from git.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import DeployFailed

if TYPE_CHECKING:
    import pygit2

    from bot.deploy.manifest import ManifestEntry

HEADER = "gatebot blob sizes 1\n"
#: A file larger than this is not read (a cache of a few hundred thousand blobs is ~30 MB).
MAX_BYTES = 64 << 20
#: Sizes up to 2**63 - 1 (git's own limit is lower); more digits are a broken line.
_MAX_DIGITS = 19


def cache_path(git_dir: str | Path) -> Path:
    return Path(git_dir) / "gatebot" / "blob-sizes"


def load(git_dir: str | Path) -> dict[str, int]:
    """{blob id: size} from the cache of the repository whose git directory is `git_dir`."""
    path = cache_path(git_dir)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError:
        return {}
    if len(data) > MAX_BYTES:
        return {}
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return {}
    if not text.startswith(HEADER):
        return {}
    out: dict[str, int] = {}
    for line in text[len(HEADER) :].splitlines():
        oid, _, size = line.partition(" ")
        # An id is only ever looked up by a real blob id, so a broken id is never met; only
        # the size has to be a plain number.
        if size.isdigit() and len(size) <= _MAX_DIGITS:
            out[oid] = int(size)
    return out


def save(git_dir: str | Path, sizes: Mapping[str, int]) -> None:
    """Replace the cache with `sizes` (the blobs of the manifest just built: the next deploy's
    tree is mostly this one, and the file never grows past one tree). Raises OSError."""
    path = cache_path(git_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{oid} {size}\n" for oid, size in sizes.items())
    fd, tmp = tempfile.mkstemp(prefix=".blob-sizes.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(HEADER)
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_sizes(repo: pygit2.Repository, entries: Iterable[ManifestEntry]) -> None:
    """Raise DeployFailed when one of `entries` (files the host's check found different from the
    manifest) has a size its blob does not have: the manifest took it from a wrong cache. The
    cache is removed first, so the next deploy reads every size from git."""
    import pygit2

    odb = repo.odb
    wrong = [e.path for e in entries if int(odb.read_header(pygit2.Oid(hex=e.oid))[1]) != e.size]
    if not wrong:
        return
    where = cache_path(repo.path)
    where.unlink(missing_ok=True)
    raise DeployFailed(
        f"the blob sizes remembered in {where} were wrong for {len(wrong)} file(s) "
        f"({', '.join(sorted(wrong)[:5])}): the file was removed; nothing went live",
        hint="deploy again: the sizes are read from git this time",
    )
