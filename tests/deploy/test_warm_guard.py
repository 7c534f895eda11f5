"""What guards the host program kept warm (bot/deploy/hostside/linger.py, bot/deploy/host/
warm.py), over the loopback sshd: a program that took the copy's port gets nothing, connections
that do not answer can neither keep the copy up nor hold it for long, the copy keeps nothing
of the deploy open, and a record is used only by the path, interpreter and program it was
made for."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from bot.deploy.host.openssh import IMPOSTOR_NOTE
from bot.deploy.hostside.linger import ANSWER_S, MAX_CONNECTIONS
from bot.deploy.hostside.protocol import CHALLENGE, PROOF
from tests.deploy.conftest import DeployEnv, starts, warm_record, write_counting_python

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}


def _port(denv: DeployEnv) -> int:
    port = json.loads(warm_record(denv).read_text())["port"]
    assert isinstance(port, int)
    return port


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _wait_closed(port: int, within: float) -> float:
    """Seconds until nothing accepts on `port` (fails after `within`)."""
    start = time.monotonic()
    while _accepts(port):
        assert time.monotonic() - start < within, f"port {port} still open after {within}s"
        time.sleep(0.2)
    return time.monotonic() - start


def _listener_pid(port: int) -> int:
    """The process listening on 127.0.0.1:`port` (from /proc: the socket's inode)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            inode = fields[9]
    assert inode is not None, f"nothing listens on {port}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return int(proc.name)
    raise AssertionError(f"no process holds the socket of port {port}")


def test_a_program_that_took_the_port_gets_no_request_and_the_report_says_so(
    denv: DeployEnv, counted: Path
) -> None:
    denv.overrides["ssh_persist_s"] = 1
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    port = _port(denv)
    _wait_closed(port, 15)  # the copy exited; its record is still on the runner
    impostor = socket.socket()
    impostor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    impostor.bind(("127.0.0.1", port))
    impostor.listen(4)
    heard: list[bytes] = []

    def pretend() -> None:
        # It challenges like the copy, takes the answer, then "proves" itself without the key
        # and greets, hoping for the deploy's requests (an env file's secrets, the upload).
        conn, _ = impostor.accept()
        with conn:
            conn.sendall(CHALLENGE + os.urandom(32).hex().encode() + b"\n")
            conn.settimeout(5)
            conn.sendall(PROOF + b"00" * 32 + b"\n" + b'hello {"python": "3.12.0"}\n')
            with contextlib.suppress(OSError):  # the deploy went elsewhere: it hung up
                while chunk := conn.recv(65536):
                    heard.append(chunk)

    thread = threading.Thread(target=pretend, daemon=True)
    thread.start()
    try:
        denv.rb.commit({"app.py": "print(2)\n"})
        r = denv.deploy()
    finally:
        impostor.close()
        thread.join(10)
    assert r.ok, r.error
    assert starts(counted) == 2  # a new host program served the deploy
    said = b"".join(heard)
    assert said.count(b"\n") == 1 and b"{" not in said  # its answer to the challenge, no request
    assert IMPOSTOR_NOTE in r.notes
    assert _port(denv) != port or _accepts(port)  # a new copy was recorded


def test_connections_that_do_not_answer_are_dropped_and_cannot_keep_the_copy_up(
    denv: DeployEnv, counted: Path
) -> None:
    denv.overrides["ssh_persist_s"] = 6
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    port = _port(denv)
    # One connection dribbles a byte at a time: it gets `denied` once its time is up.
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert slow.makefile("rb").readline().startswith(CHALLENGE)
    # A flood: no more than MAX_CONNECTIONS are challenged at once, the rest are closed.
    flood = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(24)]
    greeted = 0
    for s in flood:
        greeted += s.recv(len(CHALLENGE)).startswith(CHALLENGE)
    assert 1 <= greeted <= MAX_CONNECTIONS - 1  # the slow one holds a place
    started = time.monotonic()
    slow.settimeout(0.5)
    answer = b""
    while time.monotonic() - started < ANSWER_S + 5 and not answer:
        try:
            slow.sendall(b"0")
            answer = slow.recv(100)
        except TimeoutError:
            continue
        except OSError:
            break
    assert answer == b"denied\n" and time.monotonic() - started < ANSWER_S + 2
    # New connections keep coming and never answer: the copy still exits on time.
    closed = None
    deadline = time.monotonic() + 6 + ANSWER_S + 10
    while closed is None and time.monotonic() < deadline:
        try:
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        except OSError:
            closed = time.monotonic()
        time.sleep(0.3)
    for s in [slow, *flood]:
        s.close()
    assert closed is not None, "connections that never answered kept the copy up"


def test_the_copy_keeps_nothing_of_the_deploy_open(denv: DeployEnv, counted: Path) -> None:
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    pid = _listener_pid(_port(denv))
    fds = {int(fd.name): os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    assert all(fds[n] == "/dev/null" for n in (0, 1, 2))  # not the SSH channel
    rest = sorted(v.split(":")[0] for n, v in fds.items() if n > 2)
    assert rest == ["pipe", "pipe", "socket"], fds  # its port and its own served pipe


def test_a_record_serves_only_its_interpreter_and_any_path(denv: DeployEnv, counted: Path) -> None:
    """Another interpreter gets a copy of its own; another target path on the same login and
    interpreter is served by the same copy (its requests name their paths)."""
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    assert starts(counted) == 1
    other = denv.tmp / "python-other"
    write_counting_python(other, counted)
    denv.overrides["python"] = str(other)
    denv.rb.commit({"app.py": "print(2)\n"})
    assert denv.deploy().ok
    assert starts(counted) == 2  # another interpreter: not the first one's copy
    denv.rb.commit({"app.py": "print(3)\n"})
    assert denv.deploy().ok
    assert starts(counted) == 2  # its own copy, now
    first_root, denv.root = denv.root, denv.tmp / "host" / "elsewhere"
    assert denv.deploy().ok
    assert starts(counted) == 2  # another path on the same login: the same copy
    assert (denv.root / "current" / "app.py").read_text() == "print(3)\n"
    assert (first_root / "current" / "app.py").read_text() == "print(3)\n"
