"""The manifest of a deploy's commit, read from git by a forked child process while `gatebot
deploy` imports the rest of itself and its hosts answer (bot/cli/deploy.py).

Reading a 10,000-file tree (pygit2 plus a Python walk) takes about 0.1 s of CPU, and Python runs
one thread at a time: in the same process it would wait for the imports, or they for it. A child
forked before them (no thread runs yet, nothing of pygit2 is loaded) reads it on the other core
and sends back, first, the commit's id (so a host whose live release already has it is planned
at once) and then the manifest, with its digest computed. Sizes come from the blob sizes of the
last deploy where it can (bot/deploy/blobsizes.py); after sending, the child writes the new
tree's sizes there for the next one, and `cancel()` waits for that at the end of the run.
Errors (an unknown ref, a tree that escapes the release) come back as the same exceptions.
Where fork is not available, the same work runs in a thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot import errors
from bot.deploy.manifest import Manifest

_LEN = struct.Struct(">Q")


def _build(repo: Path, ref: str, send: Any) -> None:
    """Resolve `ref`, send ("sha", id), build the manifest (its digest computed here too, on
    this process's core), send ("manifest", it), then remember its blob sizes for the next
    deploy (bot/deploy/blobsizes.py; a failure to write them is sent as ("warning", text)).
    Any error is sent as ("error", (class name, message, hint))."""
    try:
        from bot.deploy import blobsizes
        from bot.deploy.manifest import build_manifest
        from bot.git.diff import open_repo, resolve_commit

        git = open_repo(repo)
        send(("sha", str(resolve_commit(git, ref).id)))
        known = blobsizes.load(git.path)
        manifest = build_manifest(repo, ref, known)
        _ = manifest.digest  # a cached property: it travels with the manifest
        send(("manifest", manifest))
    except errors.GatebotError as exc:
        send(("error", (type(exc).__name__, exc.message, exc.hint)))
        return
    except Exception as exc:  # noqa: BLE001 - whatever it was, the parent reports it
        send(("error", ("DeployFailed", f"reading {ref!r} from git failed: {exc}", None)))
        return
    sizes = {e.oid: e.size for e in manifest}
    if any(known.get(oid) != size for oid, size in sizes.items()):
        try:
            blobsizes.save(git.path, sizes)
        except OSError as exc:
            where = blobsizes.cache_path(git.path)
            send(("warning", f"could not remember blob sizes in {where}: {exc}"))


class ManifestJob:
    """`start(repo, ref)`, then `sha()` and `manifest()` (both block until there), and
    `cancel()` at the end, always (it ends the child)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        #: Told about what the manifest leaves out (submodules), once it is there.
        self.warn: Callable[[str], None] | None = None
        self._items: dict[str, Any] = {}
        self._ready = threading.Condition()
        self._reading = threading.RLock()
        self._pid: int | None = None
        self._read: int | None = None

    @classmethod
    def start(cls, repo: Path, ref: str) -> ManifestJob:
        job = cls(ref)
        if hasattr(os, "fork"):
            job._fork(repo, ref)
        else:  # pragma: no cover - every platform gatebot runs on has fork
            threading.Thread(target=_build, args=(repo, ref, job._put), daemon=True).start()
        return job

    def _fork(self, repo: Path, ref: str) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only the pipe to the parent stays open
            status = 0
            try:
                os.close(read)
                os.closerange(3, write)
                os.closerange(write + 1, 1 << 16)

                def send(item: tuple[str, Any]) -> None:
                    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
                    os.write(write, _LEN.pack(len(data)))
                    view = memoryview(data)
                    while view:
                        view = view[os.write(write, view) :]

                _build(repo, ref, send)
            except BaseException:  # noqa: BLE001 - a forked child never returns into the parent
                status = 1
            finally:
                os._exit(status)
        os.close(write)
        self._pid, self._read = pid, read

    def _put(self, item: tuple[str, Any]) -> None:
        with self._ready:
            self._items[item[0]] = item[1]
            self._ready.notify_all()

    def _next(self) -> tuple[str, Any] | None:
        """The child's next message; None once the pipe ended (or was cut in a message).
        The pipe is trusted: our own fork wrote it."""
        assert self._read is not None
        head = _read_exact(self._read, _LEN.size)
        if len(head) < _LEN.size:
            return None
        size = _LEN.unpack(head)[0]
        data = _read_exact(self._read, size)
        if not data or len(data) < size:
            return None
        item: tuple[str, Any] = pickle.loads(data)  # noqa: S301 - our own child, our own pipe
        return item

    def _receive(self) -> None:
        item = self._next()
        if item is None:
            item = ("error", ("DeployFailed", "reading the commit from git stopped", None))
        self._put(item)

    def _wait(self, key: str) -> Any:
        with self._reading:  # one reader of the pipe at a time
            while True:
                with self._ready:
                    if key in self._items or "error" in self._items:
                        break
                    if self._read is None:  # built in a thread: wait for it
                        self._ready.wait()
                        continue
                self._receive()
        if key not in self._items:
            name, message, hint = self._items["error"]
            cls = getattr(errors, name, errors.DeployFailed)
            if not (isinstance(cls, type) and issubclass(cls, errors.GatebotError)):
                cls = errors.DeployFailed
            raise cls(message, hint=hint)
        return self._items[key]

    def sha(self) -> str:
        value: str = self._wait("sha")
        return value

    def manifest(self) -> Manifest:
        """The manifest; the child goes on remembering its blob sizes (see `cancel`)."""
        value: Manifest = self._wait("manifest")
        if value.submodules and self.warn is not None:
            self.warn(f"submodules are not deployed: {', '.join(value.submodules)}")
        return value

    def cancel(self) -> None:
        """End the child: stopped while it still reads the tree (a redeploy of the live commit
        needs no manifest); once the manifest is here, waited for while it writes the blob
        sizes (a few ms, off the deploy's path: this runs at the end), and its warning said."""
        if self._pid is not None and "manifest" not in self._items:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
        else:
            self._drain()
        warning = self._items.pop("warning", None)
        if warning is not None and self.warn is not None:
            self.warn(str(warning))
        self._reap()

    def _drain(self) -> None:
        """Read what the child still sends, up to its end."""
        with self._reading:
            while self._read is not None and (item := self._next()) is not None:
                self._put(item)

    def _reap(self) -> None:
        with self._reading:
            if self._pid is not None:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self._pid, 0)
                self._pid = None
            if self._read is not None:
                os.close(self._read)
                self._read = None
            with self._ready:
                self._ready.notify_all()


def _read_exact(fd: int, n: int) -> bytes:
    """`n` bytes, or fewer when the pipe ended."""
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)
