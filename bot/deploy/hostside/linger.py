"""Host side: the copy of the host program that lingers for the next command (`linger`; the
runner's side is bot/deploy/host/warm.py).

The copy listens on a port of the host's loopback interface for `seconds` after its last
served connection. Both ends prove they hold the key (32 random bytes the runner made): the
copy challenges a new connection with a nonce, the client answers HMAC-SHA256 over it and sends
a nonce of its own, and only then does the copy prove itself in turn. So a local user of the
host gets nothing without the key, and a process that took the port after the copy exited
learns nothing either: the client sends no request before the copy's proof. A connection is
served by a fork of the copy (a clean program, as a new one would be); one that does not answer
in `ANSWER_S` is dropped, at most `MAX_CONNECTIONS` are handled at once, and only served ones
keep the copy up.

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import contextlib
import hmac
import os
import select
import time
from typing import Any, BinaryIO, Callable, Dict, Set

from bot.deploy.hostside.procs import VENV_JOBS
from bot.deploy.hostside.protocol import CHALLENGE, PROOF, Linger, Lingering
from bot.deploy.hostside.services import STARTED
from bot.deploy.hostside.tree import WRITTEN

#: Connections a lingering copy serves (or challenges) at once; more are closed unanswered.
MAX_CONNECTIONS = 16
#: Seconds a new connection has, in all, to answer the challenge.
ANSWER_S = 5.0
NONCE_BYTES = 32

Serve = Callable[[BinaryIO, BinaryIO], None]


def client_proof(key: bytes, nonce: bytes) -> bytes:
    """The client's answer to the copy's `nonce` (hex)."""
    return hmac.new(key, b"client\0" + nonce, "sha256").hexdigest().encode("ascii")


def server_proof(key: bytes, client_nonce: bytes, nonce: bytes) -> bytes:
    """The copy's answer to the client's nonce (hex); another label than the client's, so a
    client's answer can never be replayed as the copy's."""
    return hmac.new(key, b"server\0" + client_nonce + nonce, "sha256").hexdigest().encode("ascii")


def start_lingering(req: Linger, serve: Serve) -> Lingering:
    """Fork the lingering copy (detached: a new session, the copy in a grandchild, so no
    zombie is left) and answer with its port."""
    key = bytes.fromhex(req.token)
    if len(key) < 16 or req.seconds <= 0:
        raise ValueError("linger needs a token of 16+ bytes and a positive time")
    import socket  # imported here: a host program that does not linger starts faster

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(MAX_CONNECTIONS)
    port = sock.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                linger(sock, key, req.seconds, serve)
        finally:
            os._exit(0)
    sock.close()
    os.waitpid(pid, 0)
    return Lingering(port)


def _detach(keep: int) -> None:
    """Let go of everything inherited but the listening socket: the SSH channel on 0-2 (or its
    session would never end) and whatever else the program had open."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        open_fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, now closed
                os.close(fd)
    WRITTEN.clear()  # each connection is a new deploy: nothing it did not write itself
    STARTED.clear()
    VENV_JOBS.clear()  # the program's own children: it stops them, not the copy


def linger(sock: Any, key: bytes, idle: float, serve: Serve) -> None:
    _detach(sock.fileno())
    # A connection's fork writes its pid here once it answered the challenge: only those keep
    # the copy up (connections that do not answer must not keep it alive).
    served_r, served_w = os.pipe()
    children: Set[int] = set()
    served: Set[int] = set()
    state: Dict[str, float] = {"last": time.monotonic()}

    def note_served(data: bytes) -> None:
        for pid in (int(x) for x in data.split() if x.isdigit()):
            if pid in children:
                served.add(pid)
            else:  # it was served and already ended (reaped before its pid was read)
                state["last"] = time.monotonic()

    while True:
        for pid in list(children):
            try:
                done = os.waitpid(pid, os.WNOHANG)[0]
            except ChildProcessError:
                done = pid
            if done:
                children.discard(pid)
                if pid in served:
                    served.discard(pid)
                    state["last"] = time.monotonic()
        if not served and time.monotonic() - state["last"] > idle:
            return
        ready = select.select([sock, served_r], [], [], 0.5)[0]
        if served_r in ready:
            note_served(os.read(served_r, 4096))
        if sock not in ready:
            continue
        try:
            conn, _addr = sock.accept()
        except OSError:
            continue
        if len(children) >= MAX_CONNECTIONS:
            conn.close()  # a flood of connections that do not answer gets nothing more
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            os.close(served_r)
            ok = False
            try:
                ok = connection(conn, key, served_w, serve)
            finally:
                os._exit(0 if ok else 1)
        conn.close()
        children.add(pid)


def _answer(conn: Any, deadline: float) -> bytes:
    """The client's answer line, read until `deadline` (empty: it did not come)."""
    answer = b""
    while not answer.endswith(b"\n") and len(answer) < 300:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        conn.settimeout(left)
        try:
            chunk = conn.recv(300 - len(answer))
        except OSError:  # socket.timeout included
            return b""
        if not chunk:
            return b""
        answer += chunk
    return answer


def no_delay(conn: Any) -> None:
    """Send every write at once (TCP_NODELAY). The deploy and this program take turns, one
    line each way; with Nagle's algorithm on, a second small write in a row (the challenge's
    proof, then the greeting; an output line, then the answer) waited for the acknowledgement
    of the first, which the other end delays by up to 40 ms. Answers are written whole, so
    nothing goes out in more pieces than before."""
    import socket

    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connection(conn: Any, key: bytes, served: int, serve: Serve) -> bool:
    """Challenge a connection, prove ourselves, then serve it on its socket as stdin and
    stdout (telling the lingering copy through `served` first); False when it did not answer."""
    deadline = time.monotonic() + ANSWER_S
    nonce = os.urandom(NONCE_BYTES)
    no_delay(conn)
    conn.settimeout(ANSWER_S)
    conn.sendall(CHALLENGE + nonce.hex().encode("ascii") + b"\n")
    proof, _, theirs = _answer(conn, deadline).strip().partition(b" ")
    try:
        client_nonce = bytes.fromhex(theirs.decode("ascii"))
    except ValueError:
        client_nonce = b""
    expected = client_proof(key, nonce)
    if not hmac.compare_digest(proof, expected) or len(client_nonce) != NONCE_BYTES:
        conn.sendall(b"denied\n")
        return False
    os.write(served, b"%d " % os.getpid())
    os.close(served)
    conn.settimeout(None)
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    with open(0, "rb", closefd=False) as raw_in, open(1, "wb", closefd=False) as raw_out:
        # Buffered: the proof leaves with the program's greeting, in one write (the ssh
        # server passes it on as one packet: see `no_delay`).
        raw_out.write(PROOF + server_proof(key, client_nonce, nonce) + b"\n")
        serve(raw_in, raw_out)
    return True
