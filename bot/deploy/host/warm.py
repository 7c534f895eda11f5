"""A host program kept warm for the next command (`ssh_persist_s`, with the openssh client).

Every SSH command runs the user's shell first (`$SHELL -c`, and bash then reads `~/.bashrc`),
then a new Python; on a host whose `.bashrc` is slow that is most of a small deploy's time.
So after a command, gatebot asks its host program to linger (`linger`, hostside/linger.py): a
copy stays up for `ssh_persist_s` seconds after its last connection, on a port of the host's
loopback interface. The next command reaches it through the connection OpenSSH kept open
(`ssh -W 127.0.0.1:PORT`: a channel to that port, no shell, no new interpreter), and both
ends prove with HMAC-SHA256 over fresh nonces that they hold the same 32 random bytes: only
this runner's user (the record below, 0600 in a 0700 directory) and the lingering program's
memory have them. A connection that cannot answer is refused; a program on that port that
cannot answer (the copy exited and something else took the port) is sent nothing; a copy
nobody uses exits.

The record sits beside the kept connection's control socket, named by the interpreter and the
host program's text, so another program version or interpreter never uses it. It is not named
by the target's path: the copy serves requests that name their paths, as a new program on the
same login would, so every target deployed over one login shares it (a first release to a new
path skips the host's shell and interpreter start too). When the warm path fails (the copy
exited, the host rebooted), the record is forgotten and the command starts the host program
as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.deploy.hostside.bundle import agent_command, host_program
from bot.ssh.openssh import Login, LoginSpec, Spawned, prepare_login, spawn

KEY_BYTES = 32


@dataclass(frozen=True)
class Warm:
    port: int
    key: bytes
    record: Path


def record_for(login: Login, python: str) -> Path | None:
    """Where the lingering program run by `python` on this login is recorded (None: nothing
    kept). Another interpreter or program text is another record; the target's path is not
    part of it (see the module's docstring)."""
    if login.control_path is None:
        return None
    program = hashlib.sha256(host_program().encode()).hexdigest()
    name = hashlib.sha256(f"{python}\0{program}".encode()).hexdigest()[:16]
    return Path(f"{login.control_path}-{name}.agent")


def load(login: Login, python: str) -> Warm | None:
    record = record_for(login, python)
    if record is None:
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        port, key = data["port"], bytes.fromhex(data["key"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return None
    if len(key) != KEY_BYTES:
        return None
    return Warm(port, key, record)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


#: Records older than this are swept when a new one is written (their programs are long gone).
STALE_S = 24 * 3600


def save(login: Login, python: str, port: int, key: bytes) -> None:
    record = record_for(login, python)
    if record is None:
        return
    now = time.time()
    for old in record.parent.glob("*.agent"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_S:
                old.unlink()
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"port": port, "key": key.hex()}))
        os.replace(tmp, record)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def forget(warm: Warm) -> None:
    with contextlib.suppress(OSError):
        warm.record.unlink()


@dataclass
class Ready:
    """A process started ahead: for which login, interpreter and target path, and whether it
    reaches a lingering host program (`warm`) or starts a new one."""

    spec: LoginSpec
    python: str
    root: str
    spawned: Spawned
    warm: Warm | None
    #: Its lingering port answered without proving it holds the key (set by the handshake).
    impostor: bool = False


def start_process(
    name: str, spec: LoginSpec, python: str, root: str, env: Mapping[str, str], base: Path, ssh: str
) -> Ready:
    """Start `ssh` to the lingering host program of `root` when one is recorded, else to a new
    host program (bot/deploy/host/warm.py)."""
    login = prepare_login(name, spec, env, base, ssh)
    kept = load(login, python)
    if kept is not None and _connection_kept(login):
        return Ready(spec, python, root, spawn(login, port=kept.port), kept)
    # No kept connection (it timed out before the copy did, or a fallback used a connection
    # of its own): reaching the copy would take a new connection that `ssh -W` cannot keep
    # for the next command. A new program on a connection that becomes the kept one costs
    # the host's start once; the copy nobody uses exits after its idle time.
    return Ready(spec, python, root, spawn(login, agent_command(python)), None)


def _connection_kept(login: Login) -> bool:
    return login.control_path is not None and Path(login.control_path).is_socket()
