"""Host side: the small filesystem operations (state, lock, links, atomic writes, removal).

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import json
import os
import shutil
import stat
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from bot.deploy.hostside.protocol import (
    CURRENT_LINK,
    DEPLOY_LOG,
    LOCK_DIR,
    LOCK_OWNER_FILE,
    RELEASE_MARKER,
    RELEASES_DIR,
    TRASH_PREFIX,
    VENV_COMPLETE,
    VENVS_DIR,
    Append,
    Done,
    Inspect,
    InspectAnswer,
    Link,
    LockAcquire,
    LockAcquired,
    LockRelease,
    LockReleased,
    Remove,
    Switch,
    WriteFile,
    log_of_releases,
)


def read_json_object(path: str) -> Optional[Dict[str, Any]]:
    """A JSON object from a file; None when it is missing, unreadable or not an object."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def remove(path: str) -> bool:
    """Remove a file, link or directory tree (links are never followed); False if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def unlink_quietly(path: str) -> bool:
    """Best-effort cleanup on a path that is already failing: the first error is the one
    reported, a temp that is already gone is fine."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def rmtree_vanished_ok(path: str) -> None:
    """rmtree where an entry another sweep removed first is not an error (`onexc` from
    Python 3.12, where `onerror` is deprecated; `onerror` before)."""

    def onexc(func: Callable[..., Any], p: str, exc: BaseException) -> None:
        if not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onexc)  # novermin
    else:
        shutil.rmtree(path, onerror=lambda func, p, info: onexc(func, p, info[1]))


def write_text(path: str, text: str, fsync: bool = True) -> None:
    """Write `text` to a temp name beside `path` and rename it into place."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def op_write_file(req: WriteFile) -> Done:
    write_text(req.path, req.text, req.fsync)
    return Done(True)


def op_append(req: Append) -> Done:
    os.makedirs(os.path.dirname(req.path), exist_ok=True)
    fd = os.open(req.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, req.text.encode("utf-8"))
    finally:
        os.close(fd)
    return Done(True)


def op_switch(req: Switch) -> Done:
    current = req.current
    if os.path.isdir(current) and not os.path.islink(current):
        raise OSError("%s is a real directory, not a symlink: move it away first" % current)
    tmp = "%s.tmp-%d" % (current, os.getpid())
    os.symlink(req.link_target, tmp)
    os.replace(tmp, current)  # rename(2): `current` never disappears
    return Done(True)


def op_link(req: Link) -> Done:
    """Make `path` a symlink to `target`, replacing what is there; `mkdir` is created first."""
    if req.mkdir:
        os.makedirs(req.mkdir, exist_ok=True)
    os.makedirs(os.path.dirname(req.path), exist_ok=True)
    remove(req.path)
    os.symlink(req.target, req.path)
    return Done(True)


def op_remove(req: Remove) -> Done:
    """Remove `paths`. `background`: each directory is renamed beside itself to a
    TRASH_PREFIX name (one rename: gone from every listing at once) and a detached process
    deletes it, with whatever an earlier one left in the same directories (it was killed, or
    the host rebooted); files, and directories that cannot be renamed, go at once."""
    aside: List[str] = []
    for p in req.paths:
        moved = set_aside(p) if req.background else None
        if moved is None:
            remove(p)
        else:
            aside.append(moved)
    if aside:
        detached(lambda: delete_trash(aside))
    return Done(True)


def set_aside(path: str) -> Optional[str]:
    """Rename the directory `path` to a trash name in the same directory; None when it is not
    a directory (a link to one included) or cannot be renamed."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return None
        head, name = os.path.split(path)
        trash = os.path.join(head, "%s%s.%s" % (TRASH_PREFIX, name, os.urandom(6).hex()))
        os.rename(path, trash)
    except OSError:
        return None
    return trash


def delete_trash(paths: List[str]) -> int:
    """The detached deleter: `paths`, then any other trash in their directories (another
    deleter may be removing the same: what vanished meanwhile is skipped)."""
    os.nice(10)
    status = 0
    todo = list(paths)
    for head in sorted({os.path.dirname(p) for p in paths}):
        try:
            todo += [os.path.join(head, n) for n in os.listdir(head) if n.startswith(TRASH_PREFIX)]
        except OSError:
            status = 1
    for p in sorted(set(todo)):
        try:
            rmtree_vanished_ok(p)
        except OSError:
            status = 1  # left for the next deleter in this directory
    return status


def detached(work: Callable[[], int]) -> None:
    """Run `work` off the deploy's critical path, in a detached process (its own session,
    stdio on /dev/null, no zombie: the first child forks the worker and exits at once)."""
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            if os.fork() == 0:
                status = work()
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.waitpid(pid, 0)


def op_inspect(req: Inspect) -> InspectAnswer:
    root = req.root
    current: Optional[str] = None
    kind = "missing"
    cur = os.path.join(root, CURRENT_LINK)
    if os.path.islink(cur):
        current, kind = os.readlink(cur), "link"
    elif os.path.exists(cur):
        kind = "other"
    releases: Dict[str, Optional[Dict[str, Any]]] = {}
    rel = os.path.join(root, RELEASES_DIR)
    if os.path.isdir(rel):
        for name in os.listdir(rel):
            p = os.path.join(rel, name)
            if name.startswith(TRASH_PREFIX):
                continue  # set aside by retention, being deleted (op_remove)
            if os.path.isdir(p) and not os.path.islink(p):
                releases[name] = read_json_object(os.path.join(p, RELEASE_MARKER))
    venvs: Dict[str, bool] = {}
    ven = os.path.join(root, VENVS_DIR)
    if os.path.isdir(ven):
        for name in os.listdir(ven):
            if not name.startswith(TRASH_PREFIX):
                venvs[name] = os.path.exists(os.path.join(ven, name, VENV_COMPLETE))
    lock = os.path.join(root, LOCK_DIR)
    locked = os.path.isdir(lock)
    owner = read_json_object(os.path.join(lock, LOCK_OWNER_FILE)) if locked else None
    log = ""
    try:
        with open(os.path.join(root, DEPLOY_LOG), errors="replace") as fh:
            log = log_of_releases(fh.read(), releases)
    except OSError:
        log = ""
    return InspectAnswer(os.path.isdir(root), current, kind, releases, venvs, locked, owner, log)


def op_lock_acquire(req: LockAcquire) -> LockAcquired:
    os.makedirs(req.state, exist_ok=True)
    try:
        os.mkdir(req.lock)  # atomic: exactly one contender creates it
    except FileExistsError:
        try:
            since: Optional[float] = os.stat(req.lock).st_mtime
        except OSError:
            since = None
        owner = read_json_object(os.path.join(req.lock, LOCK_OWNER_FILE))
        return LockAcquired(True, owner, since, time.time())
    tmp = os.path.join(req.lock, LOCK_OWNER_FILE + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(req.owner)
    os.replace(tmp, os.path.join(req.lock, LOCK_OWNER_FILE))
    return LockAcquired(False)


def op_lock_release(req: LockRelease) -> LockReleased:
    """Remove the lock if `run_id` owns it ("*": whoever does); renamed away first (atomic)."""
    lock = req.lock
    if not os.path.isdir(lock):
        return LockReleased("absent")
    owner = read_json_object(os.path.join(lock, LOCK_OWNER_FILE))
    if req.run_id != "*" and (owner or {}).get("run_id") != req.run_id:
        return LockReleased("other", owner)
    gone = "%s.released-%d" % (lock, os.getpid())
    os.rename(lock, gone)
    shutil.rmtree(gone)
    return LockReleased("released", owner)
