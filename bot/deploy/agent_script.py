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
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MARKER = ".gatebot-release.json"
COMPLETE = ".gatebot-complete"


def excluded(p, excl):
    for e in excl:
        if p == e or p.startswith(e + "/"):
            return True
    return False


def hash_file(full, size):
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(full, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root, excl):
    """{path: [git mode, blob id, size]} for every file and symlink, links never followed.
    Files are hashed in a few threads (hashlib releases the GIL)."""
    if not os.path.isdir(root):
        raise OSError("no such release directory: %s" % root)
    out = {}
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        keep = []
        for d in dirnames:
            p = rel + "/" + d if rel else d
            if excluded(p, excl):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                filenames.append(d)
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = rel + "/" + f if rel else f
            if excluded(p, excl):
                continue
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                data = os.fsencode(os.readlink(full))
                h = hashlib.sha1(b"blob %d\0" % len(data))
                h.update(data)
                out[p] = [0o120000, h.hexdigest(), len(data)]
            elif stat.S_ISREG(st.st_mode):
                mode = 0o100755 if st.st_mode & stat.S_IXUSR else 0o100644
                files.append((p, full, mode, st.st_size))
            else:
                out[p] = [0, "", 0]
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = pool.map(lambda f: hash_file(f[1], f[3]), files)
        for (p, _full, mode, size), oid in zip(files, ids):
            out[p] = [mode, oid, size]
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


def op_seed(live, new, drop):
    """Make `new` a copy of `live` made of hard links (no data copied): directories are created,
    symlinks copied as links, files linked, in a few threads (link creation is latency-bound).
    Entries in `drop` (the old .venv, marker, shared links) are left out."""
    os.makedirs(os.path.dirname(new), exist_ok=True)
    os.mkdir(new)
    if live is None:
        return {"seeded": 0}
    skip = set(drop)
    links = []
    for dirpath, dirnames, filenames in os.walk(live):
        rel = os.path.relpath(dirpath, live)
        rel = "" if rel == "." else rel
        target_dir = os.path.join(new, rel) if rel else new
        keep = []
        for d in dirnames:
            p = rel + "/" + d if rel else d
            if p in skip:
                continue
            src = os.path.join(dirpath, d)
            if os.path.islink(src):
                os.symlink(os.readlink(src), os.path.join(target_dir, d))
            else:
                os.mkdir(os.path.join(target_dir, d))
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = rel + "/" + f if rel else f
            if p in skip:
                continue
            src = os.path.join(dirpath, f)
            if os.path.islink(src):
                os.symlink(os.readlink(src), os.path.join(target_dir, f))
            else:
                links.append((src, os.path.join(target_dir, f)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(lambda pair: os.link(pair[0], pair[1]), links, chunksize=64):
            pass
    return {"seeded": len(links)}


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


def ensure_dirs(root, parts):
    d = root
    for p in parts:
        d = os.path.join(d, p)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            os.mkdir(d)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(d)  # a file or link where a directory must be: replaced, never followed
            os.mkdir(d)
    return d


def real_dir_chain(root, parts):
    d = root
    for p in parts:
        d = os.path.join(d, p)
        if os.path.islink(d) or not os.path.isdir(d):
            return None
    return d


def write_file(path, data, mode):
    """Write a release file: always to a temp name renamed into place, never in place (an
    existing path may be a hard link shared with an older release). A failed write (a full
    disk) unlinks its temp file, so a cut upload gives the space back."""
    tmp = "%s.gatebot-tmp.%d" % (path, threading.get_ident())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # exact mode, whatever the umask
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise


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


def op_extract(root, control, stream, fresh=False):
    """Unpack a tar stream into `root`: the control member lists deletions; every other member
    is written to a temp name and renamed into place, so a hard-linked file of an older release
    is never modified (a new inode replaces the link) and a failed write leaves no partial file.
    `fresh`: the release was not seeded, nothing can exist yet. File writes run in a few
    threads: creating files is latency-bound on many filesystems."""
    written = deleted = 0
    os.makedirs(root, exist_ok=True)
    known_dirs = set()
    pool = ThreadPoolExecutor(max_workers=4)
    pending = []

    def settle(limit):
        while len(pending) > limit:
            pending.pop(0).result()

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                if m.name == control:
                    ctl = json.loads(tf.extractfile(m).read().decode("utf-8", "surrogateescape"))
                    for rel in ctl["delete"]:
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
                    continue
                parts = parts_of(m.name)
                dir_key = "/".join(parts[:-1])
                if dir_key in known_dirs:
                    parent = os.path.join(root, *parts[:-1])
                else:
                    parent = ensure_dirs(root, parts[:-1])
                    known_dirs.add(dir_key)
                final = os.path.join(parent, parts[-1])
                if not fresh:
                    try:
                        st = os.lstat(final)
                        if stat.S_ISDIR(st.st_mode):
                            settle(0)  # writes below it may be in flight
                            shutil.rmtree(final)
                    except FileNotFoundError:
                        pass
                if m.issym():
                    write_symlink(final, m.linkname)
                elif m.isreg():
                    data = tf.extractfile(m).read()
                    pending.append(pool.submit(write_file, final, data, m.mode & 0o777))
                    settle(64)
                else:
                    raise ValueError("unsupported member in the upload: %r" % m.name)
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
    "seed": op_seed,
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
    tar stream as frames on the same stdin."""
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
