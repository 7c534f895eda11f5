"""Private directories for gatebot's runtime files on the runner (keys, control sockets, the
resident gatebot's socket): in shared memory when we can write there, so they never reach a
disk, else in the temp directory.

Light on purpose (the standard library's `os` and `pathlib` only): the `gatebot` command looks
for the resident gatebot before it imports anything else (bot/cli/resident.py).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def memory_dir() -> Path:
    """The shared-memory directory when we can write there, else the temp directory."""
    shm = Path("/dev/shm")  # noqa: S108 - only private (0700) directories are made in it
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    import tempfile

    return Path(tempfile.gettempdir())


def user_dir(base: Path, prefix: str) -> Path | None:
    """`base/<prefix>-<uid>`, created 0700; None unless it is a real directory of ours with
    that mode (never through a link, never one another user made for us)."""
    directory = base / f"{prefix}-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        st = directory.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return directory
