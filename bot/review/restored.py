"""State restored from actions/cache, read and written without trusting what is there.

The review cache directory (`review cache`, `token-calibration.json`, `history.jsonl`) comes
back from actions/cache, which an earlier run — possibly one that ran a PR's modified workflow —
could have filled with anything a tar archive can hold: symbolic links pointing outside the
directory, hard links to files elsewhere, FIFOs, directories where a file belongs, huge files.
Every access to that state goes through this module:

- a name is one path component inside the state directory, never a path from the state itself;
- reads open the entry without following a link (`O_NOFOLLOW`), refuse anything that is not a
  regular file and read at most a stated number of bytes (`read_entry`);
- writes replace the entry atomically through a fresh temporary file (`write_entry`), so a link
  planted under that name is replaced, never written through; appends open without following
  links and refuse a file with other hard links (`append_entry`);
- `clear_entry` removes whatever odd thing (link, FIFO, directory, multiply linked file) sits
  under a name before a library such as SQLite opens it by name.

Callers turn `StateError` into "drop that state, warn once, run cold" (docs/security.md, §6.3).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any


class StateError(ValueError):
    """Restored state that cannot be used as it is (the message says what and where)."""


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")


def directory_problem(directory: Path) -> str | None:
    """Why `directory` cannot hold state (a symbolic link, not a directory), or None.

    A missing directory is fine: it is created on the first write. A link is refused even if it
    points somewhere harmless: the restore put it there, not the operator who chose the path.
    """
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return f"{directory} is a symbolic link (a restored cache must be a plain directory)"
    if not stat.S_ISDIR(st.st_mode):
        return f"{directory} is not a directory"
    return None


def _odd(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink > 1:
        return "a file with other hard links"
    return None


def clear_entry(directory: Path, name: str) -> str | None:
    """Remove `directory/name` when it is anything but a plain, singly linked regular file.

    Returns what was removed (for a warning), or None when the entry is absent or fine. Only the
    directory entry goes: unlinking a link never touches its target, and a planted directory is
    removed with `shutil.rmtree`, which does not follow links inside it.
    """
    _check_name(name)
    path = directory / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    what = _odd(st)
    if what is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
    return f"{path} was {what}; removed"


def read_entry(directory: Path, name: str, max_bytes: int) -> bytes | None:
    """The bytes of `directory/name`, or None when absent. StateError when it is not a plain
    regular file or is larger than `max_bytes`; OSError when it cannot be read."""
    _check_name(name)
    path = directory / name
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError:
        # ELOOP: the entry is a symbolic link (O_NOFOLLOW refused it).
        if os.path.islink(path):
            raise StateError(f"{path} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        what = _odd(st)
        if what is not None:
            raise StateError(f"{path} is {what}")
        if st.st_size > max_bytes:
            raise StateError(f"{path} is {st.st_size:,} bytes, over the {max_bytes:,} allowed")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while we read it
        raise StateError(f"{path} is over the {max_bytes:,} bytes allowed")
    return data


def write_entry(directory: Path, name: str, data: bytes) -> None:
    """Replace `directory/name` atomically with `data` (a reader sees the old or the new file)."""
    _check_name(name)
    problem = directory_problem(directory)
    if problem:
        raise StateError(problem)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, directory / name)  # replaces a planted link, never follows it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_entry(directory: Path, name: str, data: bytes) -> int:
    """Append `data` to `directory/name` (created if absent) with one write(2); returns the
    file's size before the append. StateError when the entry is not a plain regular file."""
    _check_name(name)
    problem = directory_problem(directory)
    if problem:
        raise StateError(problem)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if os.path.islink(path):
            raise StateError(f"{path} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        what = _odd(st)
        if what is not None:
            raise StateError(f"{path} is {what}")
        size = st.st_size
        # A previous writer killed mid-line left no newline: start on a fresh line.
        if size and data[:1] != b"\n" and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
    finally:
        os.close(fd)
    return size


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_json(data: bytes, what: str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, nesting bounded by the interpreter's recursion
    limit (deeper is a StateError, not a crash)."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(
            f"{what}: not valid JSON ({type(exc).__name__}: {str(exc)[:80]})"
        ) from None
