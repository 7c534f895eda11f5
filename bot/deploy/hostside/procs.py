"""Host side: run commands (the install into a venv, the restart) bounded in time, killed with
their children when they time out or when the deploy that asked for them is gone.

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from bot.deploy.hostside.fsops import remove
from bot.deploy.hostside.protocol import VENV_COMPLETE, BuildVenv, CommandAnswer, Shell


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


def run_argv(
    argv: List[str],
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: Optional[float] = None,
) -> CommandAnswer:
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
        status: Optional[int] = None
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
    return CommandAnswer(status, text)


def run_shell(command: str, cwd: str, env_extra: Dict[str, str], timeout: float) -> CommandAnswer:
    env = dict(os.environ)
    env.update(env_extra)
    return run_argv(["sh", "-c", command], cwd=cwd, env=env, timeout=timeout)


def op_shell(req: Shell) -> CommandAnswer:
    return run_shell(req.command, req.cwd, req.env, req.timeout)


def op_build_venv(req: BuildVenv) -> CommandAnswer:
    venv_dir = req.venv_dir
    remove(venv_dir)
    os.makedirs(os.path.dirname(venv_dir), exist_ok=True)
    res = run_argv([req.python, "-m", "venv", *req.venv_args, venv_dir], timeout=req.timeout)
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
