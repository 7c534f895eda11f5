"""Where the Action keeps the review cache, and the `path` it gives actions/cache.

actions/cache folds the `path` input, exactly as written, into the cache *version*
(@actions/cache `getCacheVersion`: the paths, the compression method, a salt), and a restore
only finds entries of the same version. So the path must be spelled the same on every runner:
the default is `.gatebot-cache`, relative to the workspace (actions/cache resolves relative
paths against `GITHUB_WORKSPACE`, and stores them relative to it). An absolute path under
`$RUNNER_TEMP` differs between ephemeral and self-hosted runners, and nothing would ever be
restored.

Inside the workspace the directory is PR territory: the checkout may already hold a
`.gatebot-cache` the PR committed (forged cache rows that would pass its own files) or a
symlink pointing elsewhere. It is emptied before the restore, so the review only ever reads
what actions/cache restored or what it computes itself, and no symlink on the way is followed.
A directory outside the workspace (an operator's persistent cache on a self-hosted runner) is
left as it is.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.errors import UsageError

DEFAULT_ACTION_CACHE_DIR = ".gatebot-cache"
# Characters that would make actions/cache read something else than one literal directory:
# a newline separates paths, `!` starts an exclusion, the rest are glob syntax; `~` is the
# home directory for actions/cache but not for gatebot.
_GLOB = frozenset("*?[]{}")


@dataclass(frozen=True)
class ActionCacheDir:
    path_input: str  # what actions/cache gets as `path` (the same string on every runner)
    directory: Path  # where gatebot reads and writes it
    emptied: bool  # it is inside the workspace and was emptied


def _refuse(raw: str, why: str) -> UsageError:
    return UsageError(
        f"cache-dir {raw!r}: {why}",
        hint="use a plain directory relative to the workspace (default .gatebot-cache) or "
        "an absolute path that is the same on every run",
    )


def _check_spelling(raw: str) -> PurePosixPath:
    if any(ord(c) < 32 or c == "\x7f" for c in raw):
        raise _refuse(raw, "control characters (a newline would make two paths)")
    if raw.startswith(("!", "~")) or _GLOB.intersection(raw):
        raise _refuse(raw, "actions/cache would read it as a pattern, not one directory")
    spelled = PurePosixPath(raw)
    if ".." in spelled.parts:
        raise _refuse(raw, "`..` is not allowed")
    return spelled


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _no_symlink_between(root: Path, target: Path, raw: str) -> None:
    """Every existing directory from the workspace down to the cache's parent is a real one."""
    current = root
    for part in target.relative_to(root).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise _refuse(raw, f"{current} is a symbolic link in the workspace")
        if current.exists() and not current.is_dir():
            raise _refuse(raw, f"{current} is not a directory")


def _empty(directory: Path) -> None:
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        directory.unlink()  # the link itself, never what it points to
    elif directory.exists():
        shutil.rmtree(directory)


def prepare_action_cache_dir(raw: str, workspace: Path) -> ActionCacheDir:
    """Validate the `cache-dir` input, create the directory, and empty it when it lies in the
    workspace. `workspace` is `$GITHUB_WORKSPACE` (the runner's working directory)."""
    raw = raw.strip() or DEFAULT_ACTION_CACHE_DIR
    spelled = _check_spelling(raw)
    root = Path(os.path.realpath(workspace))
    directory = Path(os.path.normpath(spelled if spelled.is_absolute() else root / spelled))
    if directory == root or directory in root.parents:
        raise _refuse(raw, "it is the workspace itself or one of its parents")
    inside = _inside(directory, root)
    if inside:
        _no_symlink_between(root, directory, raw)
        _empty(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _refuse(raw, f"cannot create it: {exc.strerror or exc}") from None
    return ActionCacheDir(path_input=raw, directory=directory, emptied=inside)
