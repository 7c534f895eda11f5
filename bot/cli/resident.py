"""The resident gatebot: deploy commands run in a process forked from one that has already
imported and built everything, as the Gradle daemon and Mercurial's chg do.

Why: a `gatebot deploy` spends ~0.2 s starting (click, asyncio, pydantic and the config
models, pygit2) before it does anything for the user, as long as the whole one-file release
takes on the host. With `ssh_persist_s` > 0 the connection and the host program are already
kept for the next command (bot/ssh/openssh.py, bot/deploy/host/warm.py); the resident keeps the
client side warm for the same time.

How, in one round:
- `gatebot deploy|rollback|releases|unlock` (`bot.cli.entry.run`) connects to the resident's
  socket before importing anything else. It sends its arguments, environment, umask and
  working directory, and passes its stdin, stdout and stderr (SCM_RIGHTS), so the command reads
  and writes exactly where it would have.
- The resident forks. The child takes those streams, that environment and that directory and
  runs the command as `gatebot` would (bot/cli/main.py `main`). The client forwards SIGINT,
  SIGTERM and SIGHUP to it and ends with its status.
- No resident (none started yet, another interpreter, changed code): the command runs in this
  process as always, and if it asks to be kept (`keep`), a resident is started after it,
  in the background, for the next command.

Who may use it: the socket is in a private per-user directory (0700) and the resident serves
only a peer of its own uid (SO_PEERCRED); it holds no secrets of its own (its environment is
reduced to what shapes the interpreter, `SHAPING`), and each command gets the caller's.
Which resident: its socket's name is a hash of everything that decides what would be imported
(`identity`): the interpreter, its search path, gatebot's source files (their sizes and
times), the directories of the installed packages, and the environment that shapes the
interpreter. Anything different finds no socket and runs cold.

This module is what the client imports: the standard library's lightest parts only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path

from bot.config.env import RESIDENT
from bot.privatedir import memory_dir, user_dir

#: The commands a resident runs (bot/cli/deploy.py); every other command runs in-process.
SERVED = frozenset({"deploy", "rollback", "releases", "unlock"})
#: The environment whose values name a resident: what shapes the interpreter and what
#: libraries read once, at import (libgit2 finds git's config from HOME).
SHAPING = ("HOME", "LANG", "TMPDIR")
SHAPING_PREFIXES = ("LC_", "PYTHON", "XDG_")
#: Also in a resident's own environment: PATH, and the id by which the Actions runner ends
#: the processes a job left behind (a resident started in a job ends with the job).
CARRIED = ("PATH", "RUNNER_TRACKING_ID")
#: The request (arguments and environment) is at most this big; ARG_MAX is 2 MiB on Linux.
MAX_REQUEST = 8 << 20
HEADER = struct.Struct("!I")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_kept: float | None = None  # set by `keep` in a cold run: start a resident afterwards
_keep_fd: int | None = None  # in a resident's child: where `keep` reports to the resident
_socket_path: tuple[Path | None] | None = None  # socket_path's answer, once looked for


def supported() -> bool:
    """Linux (pidfds, descriptor passing), and not turned off (`GATEBOT_RESIDENT=0`)."""
    if os.environ.get(RESIDENT, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds") and hasattr(os, "fork")


def shaping_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in SHAPING or k.startswith(SHAPING_PREFIXES)}


def _search_path() -> list[str]:
    # `python -m bot` puts the working directory first: not where a deploy's modules come
    # from (gatebot's own package is named by its location, `identity`).
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    return [p for p in sys.path if p not in ("", here)]


def identity() -> str:
    """A hash of everything that decides what a command would import and how."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    head = [sys.executable, sys.version, str(package), repr(sys.flags), os.getuid()]
    h.update(json.dumps([head, _search_path(), sorted(shaping_env(os.environ).items())]).encode())
    for entry in _search_path():
        try:
            st = os.stat(entry)
        except OSError:
            continue
        h.update(f"{entry}\0{st.st_ino}\0{st.st_mtime_ns}\n".encode())
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:  # removed while we look: an upgrade under way, hashed as such
                h.update(f"{root}/{name}\0gone\n".encode())
                continue
            h.update(f"{root}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def socket_path() -> Path | None:
    """Where this process's resident listens. Looked for once (`forward`, then `spawn` at the
    end of a cold run): the walk over gatebot's files is not repeated."""
    global _socket_path
    if _socket_path is None:
        # The per-user directory (0700, ours) beside the kept SSH connections' (bot/ssh/openssh.py).
        directory = user_dir(memory_dir(), "gatebot-resident")
        _socket_path = (None,) if directory is None else (directory / f"{identity()}.sock",)
    return _socket_path[0]


def keep(seconds: float) -> None:
    """Called by a command once its config is read: keep a resident `seconds` after this
    command (the targets' `ssh_persist_s`). 0 starts none; a running one (kept for other
    targets) stays as long as it was asked to."""
    global _kept
    if _keep_fd is not None:
        os.write(_keep_fd, f"{max(0.0, seconds)}\n".encode())
    else:
        _kept = max(0.0, seconds)


def wanted() -> float:
    """The seconds a cold run asked a resident to be kept for (0: none)."""
    return _kept or 0.0


def forward(args: list[str]) -> int | None:
    """Run `gatebot args` in the resident and return its exit status; None when there is no
    resident to run it (the caller runs it in-process)."""
    if not args or args[0] not in SERVED or not supported():
        return None
    path = socket_path()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    # From here a signal is the command's: held until the child's pid is known, then passed on.
    child: list[int] = []
    pending: list[int] = []

    def relay(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):  # it has just ended: its status follows
            os.kill(child[0], signum)

    previous = {sig: signal.signal(sig, relay) for sig in FORWARDED}
    with sock:
        pid = _send(sock, args)
        if pid is None:  # refused before it forked: nothing ran, the signals are ours again
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for held in pending:
                os.kill(os.getpid(), held)
            return None
        child.append(pid)
        for held in pending:
            relay(held, None)
        return _wait(sock, pid)


def _send(sock: socket.socket, args: list[str]) -> int | None:
    try:
        streams = [os.dup(fd) for fd in (0, 1, 2)]
    except OSError:
        return None  # a closed standard stream: the in-process run deals with it as always
    try:
        here = os.open(".", os.O_PATH | os.O_DIRECTORY)
    except OSError:
        for fd in streams:
            os.close(fd)
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    request = {
        "argv": args,
        "env": dict(os.environ),
        "umask": umask,
        "encodings": [
            [getattr(s, "encoding", None) or "utf-8", getattr(s, "errors", None) or "strict"]
            for s in (sys.stdin, sys.stdout, sys.stderr)
        ],
        "unbuffered": bool(getattr(sys.stdout, "write_through", False)),
    }
    body = json.dumps(request).encode("utf-8", "surrogateescape")
    try:
        # A resident that does not answer within this is hung: nothing was started (the pid
        # line leaves right after the fork), the command runs in-process instead.
        sock.settimeout(30.0)
        socket.send_fds(sock, [HEADER.pack(len(body))], [*streams, here])
        sock.sendall(body)
        line = _line(sock)
        sock.settimeout(None)
    except OSError:  # socket.timeout included
        return None
    finally:
        for fd in (*streams, here):
            os.close(fd)
    pid = line.removeprefix(b"pid ").strip()
    return int(pid) if line.startswith(b"pid ") and pid.isdigit() else None


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return b""
        data += chunk
    return data


def _wait(sock: socket.socket, pid: int) -> int:
    try:
        line = _line(sock)
    except OSError:
        line = b""
    kind, _, value = line.decode("ascii", "replace").strip().partition(" ")
    if kind == "exit" and value.isdigit():
        return int(value)
    if kind == "signal" and value.isdigit():
        signum = int(value)
        # End the way the command did, as the in-process run would have.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    print(
        "gatebot: the resident gatebot ended before the command did "
        f"(pid {pid}); see `gatebot releases` for the target's state",
        file=sys.stderr,
    )
    return 1


def answers(path: Path) -> bool:
    """Whether a resident listens on `path` (the socket a dead one left refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def spawn(seconds: float) -> None:
    """Start a resident for `seconds` of idleness, in the background, unless one is up."""
    if seconds <= 0 or not supported():
        return
    path = socket_path()
    if path is None:
        return
    if answers(path):
        return  # one is up (started by a concurrent command)
    import subprocess

    package_root = str(Path(__file__).resolve().parents[2])
    search = [package_root, *(p for p in _search_path() if p != package_root)]
    setup = json.dumps({"path": str(path), "idle": seconds, "sys_path": search})
    env = shaping_env(os.environ)
    env.update((k, os.environ[k]) for k in CARRIED if k in os.environ)
    try:
        subprocess.Popen(
            [sys.executable, "-c", SERVER_MAIN, setup],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=env,
            start_new_session=True,
        )
    except OSError as exc:  # no process to spare: the command is done all the same
        print(f"gatebot: no resident gatebot started ({exc.strerror})", file=sys.stderr)


# The resident's own `python -c`: its search path is the client's, gatebot's package first.
SERVER_MAIN = (
    "import json, sys; setup = json.loads(sys.argv[1]); sys.path[:] = setup['sys_path']; "
    "from bot.cli.resident_server import serve; serve(setup['path'], setup['idle'])"
)
