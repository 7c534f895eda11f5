"""Host side: the request loop. One JSON request per line in, one answer line out (see
protocol.py for the wire); `extract` reads its upload stream from the same stdin.

Part of the host program (see protocol.py): standard library only, Python 3.6. Also a one-shot
command: `hash ROOT EXCLUDES_JSON` prints the tree's listing (the audit's integrity layer).
"""

import hmac
import json
import os
import select
import sys
import time
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Set

from bot.deploy.hostside.envfile import op_write_env
from bot.deploy.hostside.fsops import (
    op_append,
    op_inspect,
    op_link,
    op_lock_acquire,
    op_lock_release,
    op_remove,
    op_switch,
    op_write_file,
)
from bot.deploy.hostside.procs import op_build_venv, op_command, op_shell
from bot.deploy.hostside.protocol import BY_NAME, CHALLENGE, Extract, Linger, Lingering
from bot.deploy.hostside.seed import op_prepare_next, op_seed
from bot.deploy.hostside.services import (
    STARTED,
    op_start_service,
    op_stop_service,
    op_wait_healthy,
)
from bot.deploy.hostside.tree import WRITTEN, hash_tree, op_hash, op_verify_hash
from bot.deploy.hostside.upload import FrameReader, op_extract

#: The handler of each operation but `extract` (which also reads the stream); the runner's
#: tests check this table against protocol.OPERATIONS.
HANDLERS: Dict[str, Callable[[Any], Any]] = {
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
    "command": op_command,
    "write_env": op_write_env,
    "start_service": op_start_service,
    "wait_healthy": op_wait_healthy,
    "stop_service": op_stop_service,
}


def answer_line(status: str, body: Any) -> bytes:
    return status.encode("ascii") + b" " + json.dumps(body).encode("utf-8") + b"\n"


def handle(name: str, args: Dict[str, Any], frames: Optional[FrameReader]) -> Any:
    """The answer of one request, as a JSON-ready dict."""
    op = BY_NAME[name]
    req = op.request(**args)
    if isinstance(req, Extract):
        assert frames is not None
        answer: Any = op_extract(req, frames)
    else:
        answer = HANDLERS[name](req)
    return answer._asdict()


def serve(raw_in: Optional[BinaryIO] = None, raw_out: Optional[BinaryIO] = None) -> None:
    raw_in = raw_in or sys.stdin.buffer
    raw_out = raw_out or sys.stdout.buffer

    def reply(line: bytes) -> None:
        raw_out.write(line)
        raw_out.flush()

    reply(answer_line("hello", {"python": sys.version.split()[0]}))
    while True:
        line = raw_in.readline()
        if not line:
            return
        if not line.strip():
            continue
        frames: Optional[FrameReader] = None
        try:
            req = json.loads(line.decode("utf-8"))
            if req["op"] == "extract":
                frames = FrameReader(raw_in)
            result = handle(req["op"], req.get("args", {}), frames)
            if frames is not None:
                frames.drain()
            reply(answer_line("ok", result))
        except EOFError as exc:
            reply(answer_line("error", "EOFError: %s" % exc))
            return
        except Exception as exc:  # every failure goes back to the caller, the agent lives on
            if frames is not None:
                frames.drain()  # stay in step with the client: skip the rest of the stream
            reply(answer_line("error", "%s: %s" % (type(exc).__name__, exc)))


def op_linger(req: Linger) -> Lingering:
    """Fork a copy of this program that listens on a loopback port for `req.seconds` after its
    last connection (the next gatebot command then reaches it without a login shell or a new
    interpreter, bot/deploy/host/warm.py). Each connection must answer HMAC-SHA256(token,
    nonce) first, and is served by its own fork, as a new program would serve it."""
    import socket  # imported here: a host program that does not need it starts faster

    key = bytes.fromhex(req.token)
    if len(key) < 16 or req.seconds <= 0:
        raise ValueError("linger needs a token of 16+ bytes and a positive time")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # detach: a new session, then the daemon in a grandchild (no zombie)
        try:
            os.setsid()
            if os.fork() == 0:
                linger(sock, key, req.seconds)
        finally:
            os._exit(0)
    sock.close()
    os.waitpid(pid, 0)
    return Lingering(port)


def linger(sock: Any, key: bytes, idle: float) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # let go of the SSH channel, or its session would never end
        os.dup2(devnull, fd)
    WRITTEN.clear()  # each connection is a new deploy: nothing it did not write itself
    STARTED.clear()
    # A connection's fork writes its pid here once it answered the challenge: only those
    # keep the copy up (connections that do not answer must not keep it alive forever).
    served_r, served_w = os.pipe()
    children: Set[int] = set()
    served: Set[int] = set()
    last = time.monotonic()
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
                    last = time.monotonic()
        if not served and time.monotonic() - last > idle:
            return
        ready = select.select([sock, served_r], [], [], 0.5)[0]
        if served_r in ready:
            data = os.read(served_r, 4096)
            served.update(int(x) for x in data.split() if x.isdigit())
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
                ok = connection(conn, key, served_w)
            finally:
                os._exit(0 if ok else 1)
        conn.close()
        children.add(pid)


def connection(conn: Any, key: bytes, served: int) -> bool:
    """Challenge a connection, then serve it on its socket as stdin and stdout (telling the
    lingering copy through `served` first); False when it did not answer."""
    conn.settimeout(5)
    nonce = os.urandom(32)
    conn.sendall(CHALLENGE + nonce.hex().encode("ascii") + b"\n")
    answer = b""
    while not answer.endswith(b"\n") and len(answer) < 200:
        chunk = conn.recv(200 - len(answer))
        if not chunk:
            return False
        answer += chunk
    expected = hmac.new(key, nonce, "sha256").hexdigest().encode("ascii")
    if not hmac.compare_digest(answer.strip(), expected):
        conn.sendall(b"denied\n")
        return False
    os.write(served, b"%d " % os.getpid())
    os.close(served)
    conn.settimeout(None)
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    with open(0, "rb", closefd=False) as raw_in, open(1, "wb", closefd=False) as raw_out:
        serve(raw_in, raw_out)
    return True


#: Connections a lingering copy serves (or challenges) at once.
MAX_CONNECTIONS = 16
HANDLERS["linger"] = op_linger


def main(argv: List[str]) -> int:
    if argv[:1] == ["serve"]:
        serve()
        return 0
    if argv[:1] == ["hash"] and len(argv) == 3:
        try:
            sys.stdout.write(json.dumps(hash_tree(argv[1], json.loads(argv[2]))))
        except OSError as exc:
            sys.stderr.write("%s\n" % exc)
            return 4
        return 0
    sys.stderr.write("usage: serve | hash ROOT EXCLUDES_JSON\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
