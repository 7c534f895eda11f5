"""The resident itself (what and why: bot/cli/resident.py): imports the deploy path once,
listens on its private socket, and forks one child per command.

One thread, one selector: the listening socket, and per running command its client's
connection (closed by the client: the child is sent SIGTERM, as a cancelled workflow would
send it) and a pidfd (the child ended: its status goes to the client). No thread ever runs,
so a fork copies a quiet process. It ends after `idle` seconds without a command, when its
socket is no longer its own, or on SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bot.cli import quickexit, resident

#: What a deploy, rollback, releases or unlock imports, with the audit that follows a deploy.
PRELOAD = (
    "bot.cli.main",
    "bot.cli.deploy",
    "bot.config.load",
    "bot.config.model",
    "bot.deploy.context",
    "bot.deploy.flow",
    "bot.deploy.host.connect",
    "bot.deploy.host.openssh",
    "bot.deploy.host.ssh",
    "bot.deploy.manifest_job",
    "bot.deploy.progress",
    "bot.deploy.jobsummary",
    "bot.github.outlet",
    "bot.metrics.history",
    "bot.audit.run",
    "pygit2",
    "rich.console",
    "rich.table",
)
#: Commands running at once; one more is refused (its client runs it in-process).
MAX_CHILDREN = 16
PEERCRED = struct.Struct("3i")


class BadRequest(ValueError):
    """A request that is not what bot/cli/resident.py `_send` writes."""


@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    umask: int
    encodings: list[tuple[str, str]]
    unbuffered: bool  # the client's stdout writes through (python -u, PYTHONUNBUFFERED)

    @classmethod
    def parse(cls, body: bytes) -> Request:
        data = json.loads(body.decode("utf-8", "surrogateescape"))
        if not isinstance(data, dict):
            raise BadRequest("not an object")
        argv, env, umask, enc = (data.get(k) for k in ("argv", "env", "umask", "encodings"))
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise BadRequest("argv")
        if argv[0] not in resident.SERVED:
            raise BadRequest(f"command {argv[0]!r} is not served")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise BadRequest("env")
        if not (isinstance(umask, int) and 0 <= umask <= 0o777):
            raise BadRequest("umask")
        if not (isinstance(enc, list) and len(enc) == 3):
            raise BadRequest("encodings")
        pairs = [(str(e[0]), str(e[1])) for e in enc if isinstance(e, list) and len(e) == 2]
        if len(pairs) != 3:
            raise BadRequest("encodings")
        return cls(argv, env, umask, pairs, data.get("unbuffered") is True)


@dataclass
class Child:
    pid: int
    conn: socket.socket
    pidfd: int
    kept: int  # the read end of the pipe `resident.keep` writes to
    client_gone: bool = False


class Resident:
    def __init__(self, listener: socket.socket, path: Path, idle: float) -> None:
        self.listener = listener
        self.path = path
        self.inode = path.stat().st_ino
        self.idle = idle
        self.deadline = time.monotonic() + idle
        self.children: dict[int, Child] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self.stopping = False
        # A signal wakes the selector (its handler only sets `stopping`): select would
        # otherwise sleep on to its timeout.
        self.wakeup_r, self.wakeup_w = socket.socketpair()
        self.wakeup_w.setblocking(False)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self._woken)
        signal.set_wakeup_fd(self.wakeup_w.fileno())

    def _woken(self, sock: Any) -> None:
        sock.recv(4096)

    def run(self) -> None:
        try:
            while self.children or not self._done():
                wait = None if self.children else max(0.0, self.deadline - time.monotonic())
                for key, _events in self.selector.select(wait):
                    key.data(key.fileobj)
        finally:
            self._unlink()

    def _done(self) -> bool:
        if self.stopping or time.monotonic() >= self.deadline:
            return True
        try:  # removed, or taken over by another resident: no new client will come
            return self.path.stat().st_ino != self.inode
        except OSError:
            return True

    def _unlink(self) -> None:
        with contextlib.suppress(OSError):  # already gone, or another resident's by now
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        self.listener.close()

    def _accept(self, listener: Any) -> None:
        conn, _ = listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            _pid, uid, _gid = PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
            )
            if uid != os.getuid() or len(self.children) >= MAX_CHILDREN or self.stopping:
                raise BadRequest("refused")
            head, fds, _flags, _addr = socket.recv_fds(conn, resident.HEADER.size, 4)
            if len(head) != resident.HEADER.size or len(fds) != 4:
                raise BadRequest("header")
            (size,) = resident.HEADER.unpack(head)
            if size > resident.MAX_REQUEST:
                raise BadRequest("too big")
            request = Request.parse(_read_exactly(conn, size))
        except (OSError, ValueError, RecursionError):
            # Refused before anything ran: the client runs the command itself.
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        self._start(conn, fds, request)

    def _start(self, conn: socket.socket, fds: list[int], request: Request) -> None:
        kept_r, kept_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: refused, the client runs the command itself
            for fd in (kept_r, kept_w, *fds):
                os.close(fd)
            conn.close()
            return
        if pid == 0:  # the child: never returns
            os.close(kept_r)
            self._close_in_child(conn)
            run_command(request, fds, kept_w)
        os.close(kept_w)
        for fd in fds:
            os.close(fd)
        child = Child(pid, conn, os.pidfd_open(pid), kept_r)
        self.children[pid] = child
        self.selector.register(child.pidfd, selectors.EVENT_READ, lambda _f: self._ended(child))
        self.selector.register(conn, selectors.EVENT_READ, lambda _f: self._client_gone(child))
        try:
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:
            self._client_gone(child)

    def _close_in_child(self, conn: socket.socket) -> None:
        signal.set_wakeup_fd(-1)
        self.selector.close()
        self.listener.close()
        self.wakeup_r.close()
        self.wakeup_w.close()
        conn.close()
        for other in self.children.values():
            other.conn.close()
            os.close(other.pidfd)
            os.close(other.kept)

    def _client_gone(self, child: Child) -> None:
        """The client closed its end (it was killed): stop its command the way a cancelled
        workflow does, so the command releases the deploy lock."""
        if child.client_gone:
            return
        child.client_gone = True
        self.selector.unregister(child.conn)
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.kill(child.pid, signal.SIGTERM)

    def _ended(self, child: Child) -> None:
        _pid, status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.selector.unregister(child.pidfd)
        os.close(child.pidfd)
        if not child.client_gone:
            self.selector.unregister(child.conn)
            line = f"exit {code}\n" if code >= 0 else f"signal {-code}\n"
            with contextlib.suppress(OSError):  # the client is gone: nobody to tell
                child.conn.sendall(line.encode())
        child.conn.close()
        kept = _kept(child.kept)
        del self.children[child.pid]
        # Up at least as long as this command asked (its targets' ssh_persist_s); a command
        # whose targets keep nothing (0) does not cut short what others asked for.
        after = self.idle if kept is None else kept
        self.deadline = max(self.deadline, time.monotonic() + after)


def _kept(fd: int) -> float | None:
    """What the command passed to `resident.keep(seconds)`; None when it did not say."""
    # Not blocking: a process the command forked and left running may hold the write end.
    os.set_blocking(fd, False)
    try:
        lines = os.read(fd, 4096).split()
    except BlockingIOError:
        lines = []
    finally:
        os.close(fd)
    try:
        return min(max(float(lines[-1]), 0.0), 86_400.0) if lines else None
    except ValueError:  # not a number: as if it had not said
        return None


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise BadRequest("the request ended early")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _stdio(encodings: list[tuple[str, str]], write_through: bool) -> None:
    """New sys.stdin/stdout/stderr over fds 0-2, buffered as the interpreter buffers them
    for what they are now (a terminal or not), in the client's encodings."""
    streams = []
    for fd, (encoding, errors) in enumerate(encodings):
        stream = io.TextIOWrapper(
            open(fd, "rb" if fd == 0 else "wb", closefd=False),  # noqa: SIM115 - the stream's own
            encoding=encoding,
            errors=errors,
            line_buffering=fd == 2 or os.isatty(fd),
            write_through=write_through,
        )
        streams.append(stream)
    # sys.__stdout__ and its kin wrap fds 0-2 too, which now are the client's.
    sys.stdin, sys.stdout, sys.stderr = streams


def run_command(request: Request, fds: list[int], kept_w: int) -> NoReturn:
    """The forked child: become the client's `gatebot` process, run the command, exit."""
    code = 70
    try:
        # Exit handlers the resident's imports registered stay the resident's (one that
        # cleaned up something at exit would do it under the next command's feet); the
        # command's own run at its end, and logging's, as they would at a process's end.
        atexit._clear()
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        os.fchdir(fds[3])
        os.close(fds[3])
        os.umask(request.umask)
        os.environ.clear()
        os.environ.update(request.env)
        tempfile.tempdir = None  # recomputed from this environment
        _stdio(request.encodings, request.unbuffered)
        resident._keep_fd = kept_w
        sys.argv = ["gatebot", *request.argv]
        from bot.cli.main import main

        try:
            main(request.argv)
            code = 0
        except SystemExit as exc:
            code = quickexit.status(exc)
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:  # noqa: BLE001 - a forked child must never return into the resident
        with contextlib.suppress(OSError, ValueError):  # stderr itself may be closed or gone
            traceback.print_exc()
            sys.stderr.flush()
        code = 1
    os._exit(code)


def _listen(path: Path) -> socket.socket | None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
    except OSError:
        if resident.answers(path):
            listener.close()
            return None  # another resident is up
        path.unlink(missing_ok=True)  # a dead resident's socket
        listener.bind(str(path))
    listener.listen(16)
    return listener


def serve(path: str, idle: float) -> None:
    """The resident's main (bot/cli/resident.py SERVER_MAIN)."""
    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the children share these pages: no collection copies them
    listener = _listen(Path(path))
    if listener is None:
        return
    server = Resident(listener, Path(path), idle)

    def stop(_signum: int, _frame: object) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    server.run()
