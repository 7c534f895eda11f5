"""Host side: the request loop. One JSON request per line in, one answer line out (see
protocol.py for the wire); `extract` reads its upload stream from the same stdin.

Part of the host program (see protocol.py): standard library only, Python 3.6. Also a one-shot
command: `hash ROOT EXCLUDES_JSON` prints the tree's listing (the audit's integrity layer).
"""

import json
import sys
from typing import Any, BinaryIO, Callable, Dict, List, Optional

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
from bot.deploy.hostside.linger import start_lingering
from bot.deploy.hostside.procs import (
    op_build_venv,
    op_command,
    op_shell,
    op_start_venv,
    stop_venv_jobs,
)
from bot.deploy.hostside.protocol import BY_NAME, Extract, Linger, Lingering
from bot.deploy.hostside.seed import op_prepare_next, op_seed
from bot.deploy.hostside.services import (
    op_start_service,
    op_stop_service,
    op_wait_healthy,
)
from bot.deploy.hostside.tree import hash_tree, op_hash, op_verify_hash
from bot.deploy.hostside.upload import FrameReader, op_extract, widen_pipe

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
    "start_venv": op_start_venv,
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
    if raw_in is None:
        widen_pipe(0)  # uploads come through it (a lingering copy serves a socket instead)
    raw_in = raw_in or sys.stdin.buffer
    raw_out = raw_out or sys.stdout.buffer

    def reply(line: bytes) -> None:
        raw_out.write(line)
        raw_out.flush()

    reply(answer_line("hello", {"python": sys.version.split()[0]}))
    try:
        serve_requests(raw_in, reply)
    finally:
        stop_venv_jobs()  # a venv started for a deploy that ended without it: not left running


def serve_requests(raw_in: BinaryIO, reply: Callable[[bytes], None]) -> None:
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
    """Keep a copy of this program up for the next command (linger.py)."""
    return start_lingering(req, serve)


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
