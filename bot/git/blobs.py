"""Reading blob contents by oid, bounded in size so one huge file cannot exhaust memory."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pygit2

# The same heuristic git uses: a NUL byte in the first 8000 bytes means binary.
_BINARY_PROBE = 8000
# The largest blob the secret scan reads whole (GitHub refuses files over 100 MB; a larger one
# is reported as not scanned). The scan itself goes window by window (bot.review.secretscan).
MAX_SCAN_BYTES = 256 * 2**20


def blob_size(repo: pygit2.Repository, oid: str | None) -> int:
    if oid is None:
        return 0
    try:
        return int(repo.odb.read_header(pygit2.Oid(hex=oid))[1])
    except (KeyError, ValueError, pygit2.GitError):
        return 0


def read_bytes(repo: pygit2.Repository, oid: str | None, max_bytes: int) -> bytes | None:
    """The blob's bytes, or None when absent, not a blob, or larger than `max_bytes` (known
    from the object header, before anything is inflated)."""
    if oid is None:
        return None
    try:
        kind, size = repo.odb.read_header(pygit2.Oid(hex=oid))
        if int(kind) != int(pygit2.enums.ObjectType.BLOB) or size > max_bytes:
            return None
        obj = repo.get(oid)
    except (KeyError, ValueError, pygit2.GitError):
        return None
    if not isinstance(obj, pygit2.Blob):
        return None
    return bytes(obj.data)


def stream(repo: pygit2.Repository, oid: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A blob's bytes in chunks of at most `chunk`, for a blob too large to hold twice.

    libgit2 only hands out whole objects, so this asks `git cat-file` (a child process; this
    one then holds one chunk at a time). Without a usable git (not installed, or refusing the
    repository), the blob is read whole, within MAX_SCAN_BYTES. Nothing from the environment
    or the user's git configuration is passed on: only the repository's own.
    """
    git = shutil.which("git")
    if git is not None:
        env = {"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/"}
        with subprocess.Popen(
            [git, "--git-dir", repo.path, "cat-file", "blob", oid],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.read(chunk)
            if first or proc.wait() == 0:
                if first:
                    yield first
                while data := proc.stdout.read(chunk):
                    yield data
                if proc.wait() == 0:
                    return
                raise ValueError(f"git cat-file failed while reading blob {oid[:12]}")
    whole = read_bytes(repo, oid, MAX_SCAN_BYTES)
    if whole is None:
        raise ValueError(f"blob {oid[:12]} cannot be read (or is over {MAX_SCAN_BYTES:,} bytes)")
    for start in range(0, len(whole), chunk):
        yield whole[start : start + chunk]


def link_reader(repo: pygit2.Repository, commit_sha: str) -> Callable[[str], str | None]:
    """The target of the symbolic link at a path of the commit's tree, or None when no link is
    there (absent, a file or a directory; a target over 4 KB, which no system can create)."""
    tree = repo[commit_sha].peel(pygit2.Commit).tree

    def target(path: str) -> str | None:
        try:
            entry = tree[path]
        except (KeyError, ValueError, UnicodeError):
            return None
        if int(entry.filemode) != int(pygit2.enums.FileMode.LINK):
            return None
        data = read_bytes(repo, str(entry.id), 4096)
        return data.decode("utf-8", "replace") if data is not None else None

    return target


def looks_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_PROBE]


def read_text(repo: pygit2.Repository, oid: str | None, max_bytes: int) -> str | None:
    """The blob as text (UTF-8, undecodable bytes replaced), or None when binary/absent/too big."""
    return as_text(read_bytes(repo, oid, max_bytes))


def as_text(data: bytes | None) -> str | None:
    """Blob bytes as text (UTF-8, undecodable bytes replaced), or None when binary or absent."""
    if data is None or looks_binary(data):
        return None
    return data.decode("utf-8", errors="replace")


class NotAFile(ValueError):
    """The path exists at the commit but is not a regular file (a directory, link, submodule)."""


def read_path_at(
    repo: pygit2.Repository, commit_sha: str, path: str, max_bytes: int
) -> bytes | None:
    """The bytes of `path` in the tree of `commit_sha`, or None when the path is absent there.

    Raises NotAFile for a directory, symbolic link or submodule, and ValueError when the file
    is larger than `max_bytes`: callers that trust only what was committed must not follow a
    link into the working tree or read an unbounded blob.
    """
    tree = repo[commit_sha].peel(pygit2.Commit).tree
    try:
        entry = tree[path]
    except KeyError:
        return None
    if entry.filemode not in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
        raise NotAFile(f"{path} is not a regular file at {commit_sha[:12]}")
    blob = repo[entry.id]
    if not isinstance(blob, pygit2.Blob):
        raise NotAFile(f"{path} is not a regular file at {commit_sha[:12]}")
    if blob.size > max_bytes:
        raise ValueError(f"{path} at {commit_sha[:12]} is larger than {max_bytes} bytes")
    return bytes(blob.data)
