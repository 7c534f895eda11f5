"""Host side: run commands (the install into a venv, the restart) bounded in time, killed with
their children when they time out or when the deploy that asked for them is gone.

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from bot.deploy.hostside.envfile import load_env_file
from bot.deploy.hostside.fsops import remove
from bot.deploy.hostside.protocol import (
    OUTPUT_LINE_MAX,
    OUTPUT_STREAM_MAX,
    VENV_COMPLETE,
    BuildVenv,
    Command,
    CommandAnswer,
    Shell,
    Started,
    StartVenv,
)


class ClientGone(Exception):
    """The deploy went away (cancelled, connection cut) while a command ran."""


def client_gone() -> bool:
    """True when stdin reached EOF. The client never writes while a command runs, so a
    readable stdin can only mean the channel closed."""
    try:
        ready, _w, _x = select.select([sys.stdin.buffer], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(ready) and not os.read(sys.stdin.buffer.fileno(), 1)


def stop_group(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM to the process group `proc` leads, SIGKILL when it is still there after 5 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)


def emit_output(text: str) -> None:
    """One `out` line to the client (see protocol.py), while a request runs."""
    line = "out " + json.dumps(text[:OUTPUT_LINE_MAX]) + "\n"
    sys.stdout.buffer.write(line.encode("utf-8"))
    sys.stdout.buffer.flush()


class LineStream:
    """Splits a command's output into lines for `emit_output`, at most OUTPUT_STREAM_MAX bytes
    in all, and keeps the tail for the answer."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.pending = b""
        self.sent = 0
        self.tail = b""

    def feed(self, data: bytes) -> None:
        self.tail = (self.tail + data)[-4000:]
        if not self.stream:
            return
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._send(line)
        if len(self.pending) > OUTPUT_LINE_MAX:
            self._send(self.pending)
            self.pending = b""

    def _send(self, line: bytes) -> None:
        if self.sent >= OUTPUT_STREAM_MAX:
            return
        self.sent += len(line) + 1
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.sent >= OUTPUT_STREAM_MAX:
            text = "(more output not streamed: see the end of it in the result)"
        emit_output(text)

    def close(self) -> str:
        if self.pending:
            self._send(self.pending)
            self.pending = b""
        return self.tail.decode("utf-8", "replace")


def run_streamed(
    argv: List[str],
    cwd: Optional[str],
    env: Dict[str, str],
    timeout: float,
    stream: bool = True,
    input: Optional[bytes] = None,
) -> CommandAnswer:
    """Like run_argv, the output read from a pipe as it comes (and streamed when `stream`).
    The command is done when its own process ends, even if something it started in the
    background still holds the pipe."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    if input is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except OSError:
            pass  # it did not read its input: its status says why
    fd = proc.stdout.fileno()
    lines = LineStream(stream)
    deadline = time.monotonic() + timeout
    status: Optional[int] = None
    gone = timed_out = eof = False
    while True:
        if eof:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
        elif select.select([fd], [], [], 0.2)[0]:
            data = os.read(fd, 65536)
            if data:
                lines.feed(data)
            else:
                eof = True
        status = proc.poll()
        if status is not None:
            # Ended: take what is already in the pipe, never wait for a background child.
            for _ in range(64):  # bounded: a background child may keep writing
                if eof or not select.select([fd], [], [], 0)[0]:
                    break
                data = os.read(fd, 65536)
                eof = not data
                lines.feed(data)
            break
        gone = client_gone()
        timed_out = time.monotonic() > deadline
        if gone or timed_out:
            stop_group(proc)
            status = proc.wait()
            break
    proc.stdout.close()
    text = lines.close()
    if gone:
        raise ClientGone("the deploy went away; the command was stopped")
    if timed_out:
        return CommandAnswer(124, text + "\n(timed out after %ds)" % timeout)
    return CommandAnswer(status, text)


def command_env(extra: Dict[str, str], env_file: Optional[str]) -> Dict[str, str]:
    """The host program's environment, the release's env file on top, then `extra`."""
    env = dict(os.environ)
    env.update(load_env_file(env_file))
    env.update(extra)
    return env


def op_command(req: Command) -> CommandAnswer:
    env = command_env(req.env, req.env_file)
    return run_streamed(["sh", "-c", req.command], req.cwd, env, req.timeout)


class Captured:
    """A command started in its own process group, its output going to a temporary file."""

    def __init__(self, argv: List[str], cwd: Optional[str], env: Optional[Dict[str, str]]) -> None:
        import tempfile  # imported here: a host program that does not need it starts faster

        # Closed by finish() or stop(): the command outlives this call (start_venv).
        self.out = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self.out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self.out.close()
            raise

    def finish(self, deadline: Optional[float], timeout: Optional[float]) -> CommandAnswer:
        """Wait for the command until `deadline` (monotonic), then its status and output tail;
        killed with its children at the deadline or when the deploy that asked for it is gone
        (no orphan installs)."""
        status: Optional[int] = None
        gone = False
        try:
            while status is None:
                try:
                    status = self.proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    gone = client_gone()
                    if gone or (deadline is not None and time.monotonic() > deadline):
                        stop_group(self.proc)
                        status = self.proc.wait()
                        if not gone:
                            status = 124
            self.out.seek(0)
            text = self.out.read().decode("utf-8", "replace")[-4000:]
        finally:
            self.out.close()
        if gone:
            raise ClientGone("the deploy went away; the command was stopped")
        if status == 124 and timeout is not None:
            text += "\n(timed out after %ds)" % timeout
        return CommandAnswer(status, text)

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc.wait()
        self.out.close()


def run_argv(
    argv: List[str],
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: Optional[float] = None,
) -> CommandAnswer:
    """Run a command in its own process group, output captured, bounded in time (Captured)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return Captured(argv, cwd, env).finish(deadline, timeout)


def run_shell(command: str, cwd: str, env_extra: Dict[str, str], timeout: float) -> CommandAnswer:
    env = dict(os.environ)
    env.update(env_extra)
    return run_argv(["sh", "-c", command], cwd=cwd, env=env, timeout=timeout)


def op_shell(req: Shell) -> CommandAnswer:
    return run_shell(req.command, req.cwd, req.env, req.timeout)


#: Venvs being created in the background (`start_venv`), by directory, with their deadline and
#: time limit: `build_venv` of the same directory takes the result. A host program that ends
#: stops those nobody took (stop_venv_jobs).
VENV_JOBS: Dict[str, Tuple[Captured, float, float]] = {}


def _fresh_venv_dir(venv_dir: str) -> None:
    remove(venv_dir)
    os.makedirs(os.path.dirname(venv_dir), exist_ok=True)


def _venv_argv(python: str, venv_args: List[str], venv_dir: str) -> List[str]:
    return [python, "-m", "venv", *venv_args, venv_dir]


def stop_venv_jobs() -> None:
    """Stop the venvs nobody took and remove what they made (the deploy that started them
    failed or went away; a venv without its marker is never used anyway)."""
    while VENV_JOBS:
        venv_dir, (job, _deadline, _timeout) = VENV_JOBS.popitem()
        job.stop()
        remove(venv_dir)


def op_start_venv(req: StartVenv) -> Started:
    """Start creating the venv while the deploy goes on (the upload): its interpreter start and
    ensurepip no longer wait for the upload, nor the upload for them."""
    old = VENV_JOBS.pop(req.venv_dir, None)
    if old is not None:
        old[0].stop()
    _fresh_venv_dir(req.venv_dir)
    job = Captured(_venv_argv(req.python, req.venv_args, req.venv_dir), None, None)
    VENV_JOBS[req.venv_dir] = (job, time.monotonic() + req.timeout, req.timeout)
    return Started(True)


def op_build_venv(req: BuildVenv) -> CommandAnswer:
    venv_dir = req.venv_dir
    started = VENV_JOBS.pop(venv_dir, None)
    if started is not None:
        job, deadline, timeout = started
        res = job.finish(deadline, timeout)
    else:
        _fresh_venv_dir(venv_dir)
        res = run_argv(_venv_argv(req.python, req.venv_args, venv_dir), timeout=req.timeout)
    if res.status != 0:
        remove(venv_dir)
        return res
    if req.install:
        env = {
            "VIRTUAL_ENV": venv_dir,
            "PATH": os.path.join(venv_dir, "bin") + os.pathsep + os.environ.get("PATH", ""),
        }
        os.environ.pop("PYTHONHOME", None)
        out = run_shell(req.install, req.release_dir, env, req.timeout)
        if out.status != 0:
            remove(venv_dir)  # no marker anyway; this frees the disk
            return out
    with open(os.path.join(venv_dir, VENV_COMPLETE), "w") as fh:
        fh.write(str(time.time()))
    return CommandAnswer(0, "")
