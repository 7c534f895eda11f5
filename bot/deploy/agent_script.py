"""The host side of a deploy: ONE small Python program run by the host's interpreter over SSH.

It is sent as source (`python -S -c <this file> serve`), reads one JSON request per line on stdin
and answers one JSON line each, so a whole deploy costs one SSH channel instead of one per step
(each exec channel starts the user's login shell, which can cost a quarter second on its own).
Only the standard library is used and nothing newer than Python 3.6, so any host python runs it.
The same source also serves one-shot commands: `hash ROOT EXCLUDES_JSON` prints the tree's
git blob ids (used by integrity checks that run without the agent).

This file is never imported on the host side as a module: it is text shipped to the host.
"""
# ruff: noqa: S324, UP031, BLE001, SIM110, B905
# (text shipped to hosts with Python 3.6: no newer idioms; sha1 is the git blob id, not security)
# mypy: ignore-errors

import hashlib
import json
import os
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MARKER = ".gatebot-release.json"
COMPLETE = ".gatebot-complete"
INDEX = ".gatebot-index.json"  # a release's hash index (see op_verify_hash)


def excluded(p, excl):
    for e in excl:
        if p == e or p.startswith(e + "/"):
            return True
    return False


def blob_id(data):
    """git's blob id of bytes in memory (sha1 over `blob <size>\\0` + data)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def hash_file(full, size):
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(full, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def walk(root, excl):
    """(relative path, os.DirEntry) of everything under `root`, each directory before what it
    holds; symlinks are never followed, `excl` paths are left out and not entered. scandir: an
    entry's type comes with the directory listing, so a file costs one lstat at most."""
    stack = [(root, "")]
    while stack:
        dirpath, rel = stack.pop()
        with os.scandir(dirpath) as it:
            entries = list(it)
        for entry in entries:
            p = rel + "/" + entry.name if rel else entry.name
            if excluded(p, excl):
                continue
            yield p, entry
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, p))


def hash_tree(root, excl, known=None, counts=None):
    """{path: [git mode, blob id, size]} for every file and symlink, links never followed.
    `known`: {path: [blob id, dev, inode, size, mtime_ns]} of files whose hash is already
    known; a file whose lstat still shows that inode, size and mtime keeps the known id
    without being read (git's index does the same). Other files are hashed in a few threads
    (hashlib releases the GIL). `counts` receives how many were hashed and how many were not."""
    if not os.path.isdir(root):
        raise OSError("no such release directory: %s" % root)
    known = known or {}
    out = {}
    stats = {}
    files = []
    for p, entry in walk(root, excl):
        if entry.is_dir(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            data = os.fsencode(os.readlink(entry.path))
            out[p] = [0o120000, blob_id(data), len(data)]
        elif stat.S_ISREG(st.st_mode):
            mode = 0o100755 if st.st_mode & stat.S_IXUSR else 0o100644
            stats[p] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            k = known.get(p)
            if k is not None and tuple(k[1:]) == stats[p]:
                out[p] = [mode, k[0], st.st_size]
            else:
                files.append((p, entry.path, mode, st.st_size))
        else:
            out[p] = [0, "", 0]
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = pool.map(lambda f: hash_file(f[1], f[3]), files)
        for (p, _full, mode, size), oid in zip(files, ids):
            out[p] = [mode, oid, size]
    if counts is not None:
        counts["hashed"] = len(files)
        counts["hashed_bytes"] = sum(f[3] for f in files)
        counts["reused"] = len(stats) - len(files)
        counts["stats"] = stats
    return out


# Files this agent wrote during the deploy, hashed from the bytes as they were written:
# {release root: {path: [blob id, dev, inode, size, mtime_ns]}}. The agent lives for one deploy.
WRITTEN = {}


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def load_index(path):
    """The hash index a verified release left (see op_verify_hash), as `known` entries.

    An entry counts only when the file's recorded mtime is older than the index file itself
    (git's racy-clean rule): a file modified after the index was written, or within the same
    timestamp tick as its recording, has a different or a "racy" mtime and is hashed again.
    A missing, unreadable or malformed index is no index: everything is hashed."""
    try:
        written = os.stat(path).st_mtime_ns
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == 1 else None
    if not isinstance(files, dict):
        return {}
    out = {}
    for p, e in files.items():
        if (
            isinstance(e, list)
            and len(e) == 5
            and isinstance(e[0], str)
            and all(_int(x) for x in e[1:])
            and e[4] < written
        ):
            out[p] = e
    return out


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def op_inspect(root):
    out = {
        "exists": os.path.isdir(root),
        "current": None,
        "current_kind": "missing",
        "releases": {},
        "venvs": {},
        "lock": None,
        "locked": False,
        "log": "",
    }
    cur = os.path.join(root, "current")
    if os.path.islink(cur):
        out["current"] = os.readlink(cur)
        out["current_kind"] = "link"
    elif os.path.exists(cur):
        out["current_kind"] = "other"
    rel = os.path.join(root, "releases")
    if os.path.isdir(rel):
        for name in os.listdir(rel):
            p = os.path.join(rel, name)
            if os.path.isdir(p) and not os.path.islink(p):
                out["releases"][name] = read_json(os.path.join(p, MARKER))
    ven = os.path.join(root, "venvs")
    if os.path.isdir(ven):
        for name in os.listdir(ven):
            out["venvs"][name] = os.path.exists(os.path.join(ven, name, COMPLETE))
    lock = os.path.join(root, ".gatebot", "lock")
    if os.path.isdir(lock):
        out["locked"] = True
        out["lock"] = read_json(os.path.join(lock, "owner.json"))
    try:
        with open(os.path.join(root, ".gatebot", "deploy.jsonl"), errors="replace") as fh:
            out["log"] = fh.read()
    except OSError:
        pass
    return out


def op_lock_acquire(state, lock, owner):
    os.makedirs(state, exist_ok=True)
    try:
        os.mkdir(lock)  # atomic: exactly one contender creates it
    except FileExistsError:
        try:
            since = os.stat(lock).st_mtime
        except OSError:
            since = None
        o = read_json(os.path.join(lock, "owner.json"))
        return {"held": True, "owner": o, "since": since, "now": time.time()}
    tmp = os.path.join(lock, "owner.json.tmp")
    with open(tmp, "w") as fh:
        fh.write(owner)
    os.replace(tmp, os.path.join(lock, "owner.json"))
    return {"held": False}


def op_lock_release(lock, run_id):
    """Remove the lock if `run_id` owns it ("*": whoever does); renamed away first (atomic)."""
    if not os.path.isdir(lock):
        return {"state": "absent"}
    o = read_json(os.path.join(lock, "owner.json"))
    if run_id != "*" and (o or {}).get("run_id") != run_id:
        return {"state": "other", "owner": o}
    gone = "%s.released-%d" % (lock, os.getpid())
    os.rename(lock, gone)
    shutil.rmtree(gone)
    return {"state": "released", "owner": o}


def op_hash(root, excl):
    return hash_tree(root, excl)


def listing_digest(listing):
    """sha256 over the sorted `<mode> <blob id> <size>\t<path>` lines, exactly as the client's
    Manifest.digest: equal digests mean the release holds the manifest, nothing more or less."""
    lines = sorted("%06o %s %d\t%s" % (e[0], e[1], e[2], p) for p, e in listing.items())
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def op_verify_hash(root, excl, trust=(), record=False, written=True, expect=None):
    """hash_tree for a deploy's checks: reuses the ids this agent computed while writing files
    into `root` and those of the `trust` indexes (other verified releases, whose files the seed
    hard-linked: same inode) where the inode, size and mtime are unchanged; hashes the rest.
    `record`: write root's own index afterwards (a cache of ids by inode state, true whatever
    the manifest says), so the next release seeded from this one need not read it again."""
    known = {}
    for src in trust:
        known.update(load_index(src))
    if written:
        known.update(WRITTEN.get(root, {}))
    counts = {}
    listing = hash_tree(root, excl, known, counts)
    stats = counts.pop("stats")
    if record:
        files = {}
        for p, st in stats.items():
            files[p] = [listing[p][1], st[0], st[1], st[2], st[3]]
        write_index(os.path.join(root, INDEX), files)
    if expect is not None and listing_digest(listing) == expect:
        # The release is the manifest: only the verdict travels back, not every path.
        return {"listing": None, "match": True, "counts": counts}
    return {"listing": listing, "counts": counts}


def write_index(path, files):
    """Write an index whose own mtime is past every entry's (see load_index): files written in
    the last clock tick (coarse: a few ms) would be "racy" and read again by the next deploy,
    so the index is touched again once the tick has passed (at most a few short waits)."""
    op_write_file(path, json.dumps({"version": 1, "files": files}, separators=(",", ":")), False)
    newest = max([e[4] for e in files.values()] or [0])
    for _ in range(50):
        if os.stat(path).st_mtime_ns > newest:
            break
        time.sleep(0.005)
        os.utime(path)


STANDBY = ".next-"  # releases/.next-<live release>: a seed prepared ahead (op_prepare_next)


def standby_path(live):
    return os.path.join(os.path.dirname(live), STANDBY + os.path.basename(live))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rmtree_vanished_ok(path):
    """rmtree where an entry another sweep removed first is not an error (`onexc` from
    Python 3.12, where `onerror` is deprecated; `onerror` before)."""

    def onexc(func, p, exc):
        if not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onexc)
    else:
        shutil.rmtree(path, onerror=lambda func, p, info: onexc(func, p, info[1]))


def sweep_standby(releases, keep=None):
    """Remove prepared seeds nobody will take: finished ones other than `keep` (a deploy takes
    the one of the live release before it sweeps) and unfinished ones whose preparing process
    is gone. Two sweeps may meet: what the other removed first is skipped."""
    if not os.path.isdir(releases):
        return
    for name in os.listdir(releases):
        if not name.startswith(STANDBY) or name == keep:
            continue
        head, sep, pid = name.rpartition(".tmp-")
        if sep and head and pid.isdigit() and pid_alive(int(pid)):
            continue  # still being prepared: it renames itself when done, swept next time
        rmtree_vanished_ok(os.path.join(releases, name))


def op_seed(live, new, drop, standby=False):
    """Make `new` a copy of `live` made of hard links (no data copied): directories are created,
    symlinks copied as links, files linked, in a few threads (link creation is latency-bound).
    Entries in `drop` (the old .venv, marker, shared links) are left out.
    `standby`: take the copy a previous deploy prepared for `live`, when it is ready (one
    rename instead of a link per file), then sweep the prepared copies nobody will take."""
    os.makedirs(os.path.dirname(new), exist_ok=True)
    if live is not None and standby:
        ready = standby_path(live)
        taken = False
        if os.path.isdir(ready) and not os.path.islink(ready):
            try:
                os.rename(ready, new)
                taken = True
            except FileNotFoundError:
                taken = False  # an older preparer's sweep got there first: seed as usual
        sweep_standby(os.path.dirname(live))
        if taken:
            return {"seeded": 0, "standby": True}
    os.mkdir(new)
    if live is None:
        return {"seeded": 0}
    links = []
    for p, entry in walk(live, drop):
        target = os.path.join(new, p)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(target)  # walk yields a directory before what it holds
        else:
            links.append((entry.path, target))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(lambda pair: os.link(pair[0], pair[1]), links, chunksize=64):
            pass
    return {"seeded": len(links)}


def op_prepare_next(live, drop):
    """Prepare the next release's seed from `live` in the background, off any deploy's
    critical path: a detached process (its own session, stdio on /dev/null, low priority)
    links releases/.next-<live>.tmp-<pid> and renames it to releases/.next-<live> when
    complete. The next deploy takes it if `live` is still live (op_seed); files edited or
    added since are found by that deploy's check like any drift in a seed."""
    ready = standby_path(live)
    if not os.path.isdir(live):
        return {"started": False}
    pid = os.fork()
    if pid == 0:  # first child: detach, fork the worker, exit at once (no zombie)
        status = 0
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            if os.fork() == 0:
                status = prepare_worker(live, ready, drop)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.waitpid(pid, 0)
    return {"started": True}


def prepare_worker(live, ready, drop):
    os.nice(10)
    tmp = "%s.tmp-%d" % (ready, os.getpid())
    try:
        sweep_standby(os.path.dirname(live), keep=os.path.basename(ready))
        if os.path.isdir(ready):
            return 0  # prepared already (a redeploy of the live release)
        op_seed(live, tmp, drop)
        os.rename(tmp, ready)  # fails if another one finished first: this one is removed
    except OSError:
        remove(tmp)
        return 1
    return 0


def remove(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def op_link(path, target, mkdir=None):
    """Make `path` a symlink to `target`, replacing what is there; `mkdir` is created first."""
    if mkdir:
        os.makedirs(mkdir, exist_ok=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    remove(path)
    os.symlink(target, path)
    return {}


class ClientGone(Exception):
    """The deploy went away (cancelled, connection cut) while a command ran."""


def client_gone():
    """True when stdin reached EOF. The client never writes while a command runs, so a
    readable stdin can only mean the channel closed."""
    try:
        ready, _w, _x = select.select([sys.stdin.buffer], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(ready) and not os.read(sys.stdin.buffer.fileno(), 1)


def run_argv(argv, cwd=None, env=None, timeout=None):
    """Run a command in its own process group, output captured; killed with its children when
    it times out or when the deploy that asked for it is gone (no orphan installs)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        status = None
        gone = False
        while status is None:
            try:
                status = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                gone = client_gone()
                if gone or (deadline is not None and time.monotonic() > deadline):
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                        proc.wait(timeout=5)
                    except (OSError, subprocess.TimeoutExpired):
                        os.killpg(proc.pid, signal.SIGKILL)
                    status = proc.wait()
                    if not gone:
                        status = 124
        out.seek(0)
        text = out.read().decode("utf-8", "replace")[-4000:]
    if gone:
        raise ClientGone("the deploy went away; the command was stopped")
    if status == 124 and timeout is not None:
        text += "\n(timed out after %ds)" % timeout
    return {"status": status, "output": text}


def run_shell(command, cwd, env_extra, timeout):
    env = dict(os.environ)
    env.update(env_extra)
    return run_argv(["sh", "-c", command], cwd=cwd, env=env, timeout=timeout)


def op_build_venv(python, venv_args, venv_dir, release_dir, install, timeout):
    remove(venv_dir)
    os.makedirs(os.path.dirname(venv_dir), exist_ok=True)
    res = run_argv([python, "-m", "venv", *venv_args, venv_dir], timeout=timeout)
    if res["status"] != 0:
        remove(venv_dir)
        return res
    if install:
        env = {
            "VIRTUAL_ENV": venv_dir,
            "PATH": os.path.join(venv_dir, "bin") + os.pathsep + os.environ.get("PATH", ""),
        }
        os.environ.pop("PYTHONHOME", None)
        out = run_shell(install, release_dir, env, timeout)
        if out["status"] != 0:
            remove(venv_dir)  # no marker anyway; this frees the disk
            return out
    with open(os.path.join(venv_dir, COMPLETE), "w") as fh:
        fh.write(str(time.time()))
    return {"status": 0, "output": ""}


def op_write_file(path, text, fsync=True):
    """Write `text` to a temp name beside `path` and rename it into place."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    return {}


def op_append(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return {}


def op_switch(link_target, current):
    if os.path.isdir(current) and not os.path.islink(current):
        raise OSError("%s is a real directory, not a symlink: move it away first" % current)
    tmp = "%s.tmp-%d" % (current, os.getpid())
    os.symlink(link_target, tmp)
    os.replace(tmp, current)  # rename(2): `current` never disappears
    return {}


def op_shell(command, cwd, env, timeout):
    return run_shell(command, cwd, env, timeout)


def op_remove(paths):
    for p in paths:
        remove(p)
    return {}


class FrameReader:
    """The bytes of length-prefixed frames (4-byte big-endian length; 0 ends the stream)."""

    def __init__(self, raw):
        self.raw = raw
        self.left = 0
        self.done = False

    def read(self, n=-1):
        out = []
        while not self.done and (n < 0 or n > 0):
            if self.left == 0:
                head = self.raw.read(4)
                if len(head) < 4:
                    raise EOFError("the upload stream was cut")
                self.left = int.from_bytes(head, "big")
                if self.left == 0:
                    self.done = True
                    break
            take = self.left if n < 0 else min(n, self.left)
            data = self.raw.read(take)
            if not data:
                raise EOFError("the upload stream was cut")
            self.left -= len(data)
            out.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(out)

    def drain(self):
        while not self.done:
            self.read(1 << 20)


def parts_of(rel):
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise ValueError("refusing unsafe path in the upload: %r" % rel)
    return parts


def ensure_dirs(root, parts, made=None):
    """The directory root/parts..., created as needed. A file or link where a directory must
    be is replaced, never followed. `made`: prefixes already known to be real directories
    (this upload created or checked them), so each is checked once per upload."""
    d = root
    key = ""
    for p in parts:
        d = os.path.join(d, p)
        key = key + "/" + p if key else p
        if made is not None and key in made:
            continue
        try:
            os.mkdir(d)  # the common case in a new release: one call, no lstat first
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                os.unlink(d)  # a file or link where a directory must be: replaced
                os.mkdir(d)
        if made is not None:
            made.add(key)
    return d


def real_dir_chain(root, parts):
    d = root
    for p in parts:
        d = os.path.join(d, p)
        if os.path.islink(d) or not os.path.isdir(d):
            return None
    return d


# Bits the process umask would clear from a new file's mode: when none of ours, the mode
# given to open() is exact and no fchmod is needed.
def _umask():
    um = os.umask(0)
    os.umask(um)
    return um


UMASK = _umask()
WRITERS = 4  # threads writing an upload's files


def write_file(path, data, mode, new=False):
    """Write a release file. An existing path is replaced through a temp name renamed into
    place, never written in place (it may be a hard link shared with an older release); a path
    known not to exist (`new`) is created directly (O_EXCL), one rename fewer. A failed write
    (a full disk) unlinks what it created, so a cut upload gives the space back.

    Returns [blob id, dev, inode, size, mtime_ns]: the git id of the bytes written, hashed from
    memory while they are here, and the inode state they were written with (WRITTEN)."""
    oid = blob_id(data)
    tmp = path if new else "%s.gatebot-tmp.%d" % (path, threading.get_ident())
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    fd = os.open(tmp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode & UMASK:
                os.fchmod(fd, mode)  # exact mode, whatever the umask
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not new:
            os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return [oid, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def write_symlink(path, target):
    """A symlink via a temp name too, removed when it cannot be put in place."""
    tmp = "%s.gatebot-tmp" % path
    unlink_quietly(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise


def unlink_quietly(path):
    """Best-effort cleanup on a path that is already failing: the first error is the one
    reported, a temp that is already gone is fine."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


# The upload stream (bot/deploy/stream.py writes it): records of a fixed header, the path,
# the payload.
# kind: F file (payload: content), L symlink (payload: target), D deletions (payload: JSON
# list of paths), E end. mode: permission bits of F. Sizes are exact: no padding.
RECORD = struct.Struct(">cIQH")  # kind, mode, payload size, path length


def read_exact(stream, n):
    data = stream.read(n) if n else b""
    if len(data) != n:
        raise EOFError("the upload stream was cut")
    return data


def delete_paths(root, paths):
    deleted = 0
    for rel in paths:
        parts = parts_of(rel)
        parent = real_dir_chain(root, parts[:-1])
        if parent is None:
            continue
        if remove(os.path.join(parent, parts[-1])):
            deleted += 1
        while parent != root:  # git keeps no empty directories
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)
    return deleted


def op_extract(root, stream, fresh=False):
    """Unpack an upload stream (RECORD) into `root`. A path that exists is replaced through a
    temp name renamed into place, so a hard-linked file of an older release is never modified
    (a new inode replaces the link) and a failed write leaves no partial file; a new path is
    created directly. `fresh`: the release was not seeded, nothing can exist yet. File writes
    run in a few threads: creating files is latency-bound on many filesystems."""
    written = deleted = 0
    os.makedirs(root, exist_ok=True)
    known_dirs = set()
    pool = ThreadPoolExecutor(max_workers=WRITERS)
    pending = []
    hashed = WRITTEN.setdefault(root, {})

    def settle(limit):
        while len(pending) > limit:
            rel, fut = pending.pop(0)
            hashed[rel] = fut.result()

    try:
        while True:
            kind, mode, size, plen = RECORD.unpack(read_exact(stream, RECORD.size))
            name = read_exact(stream, plen).decode("utf-8", "surrogateescape")
            if kind == b"E":
                break
            payload = read_exact(stream, size)
            if kind == b"D":
                deleted += delete_paths(
                    root, json.loads(payload.decode("utf-8", "surrogateescape"))
                )
                continue
            if kind not in (b"F", b"L"):
                raise ValueError("unknown record %r in the upload" % kind)
            parts = parts_of(name)
            parent = ensure_dirs(root, parts[:-1], known_dirs)
            final = os.path.join(parent, parts[-1])
            exists = False
            if not fresh:
                try:
                    st = os.lstat(final)
                    exists = True
                    if stat.S_ISDIR(st.st_mode):
                        settle(0)  # writes below it may be in flight
                        shutil.rmtree(final)
                        exists = False
                except FileNotFoundError:
                    exists = False
            if kind == b"L":
                write_symlink(final, payload.decode("utf-8", "surrogateescape"))
            else:
                rel = "/".join(parts)
                hashed.pop(rel, None)
                job = pool.submit(write_file, final, payload, mode & 0o777, not exists)
                pending.append((rel, job))
                settle(64)
            written += 1
        settle(0)
    finally:
        pool.shutdown(wait=True)
    return {"written": written, "deleted": deleted}


OPS = {
    "inspect": op_inspect,
    "lock_acquire": op_lock_acquire,
    "lock_release": op_lock_release,
    "hash": op_hash,
    "verify_hash": op_verify_hash,
    "seed": op_seed,
    "prepare_next": op_prepare_next,
    "link": op_link,
    "build_venv": op_build_venv,
    "write_file": op_write_file,
    "append": op_append,
    "switch": op_switch,
    "shell": op_shell,
    "remove": op_remove,
    "extract": op_extract,
}


def serve():
    """One JSON request per line in, one JSON reply per line out. `extract` is followed by its
    upload stream as frames on the same stdin."""
    raw_in, raw_out = sys.stdin.buffer, sys.stdout.buffer

    def reply(obj):
        raw_out.write(json.dumps(obj).encode("utf-8") + b"\n")
        raw_out.flush()

    reply({"ready": True, "python": sys.version.split()[0]})
    while True:
        line = raw_in.readline()
        if not line:
            return
        if not line.strip():
            continue
        frames = None
        try:
            req = json.loads(line.decode("utf-8"))
            args = req.get("args", {})
            if req["op"] == "extract":
                frames = FrameReader(raw_in)
                args["stream"] = frames
            result = OPS[req["op"]](**args)
            if frames is not None:
                frames.drain()
            reply({"ok": True, "result": result})
        except EOFError as exc:
            reply({"ok": False, "error": "EOFError: %s" % exc})
            return
        except Exception as exc:  # every failure goes back to the caller, the agent lives on
            if frames is not None:
                frames.drain()  # stay in step with the client: skip the rest of the stream
            reply({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["hash"]:
        try:
            sys.stdout.write(json.dumps(hash_tree(sys.argv[2], json.loads(sys.argv[3]))))
        except OSError as exc:
            sys.stderr.write("%s\n" % exc)
            sys.exit(4)
