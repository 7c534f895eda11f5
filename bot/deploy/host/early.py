"""Connections started before the configuration is validated: `gatebot deploy` reads the YAML,
starts `ssh` to the hosts of the first rollout batch at once, and only then builds the config
models and imports the deploy (together about as long as the SSH key exchange and the host
program's start). Light on purpose: no pydantic, no asyncio.

Only plain values are used (bot/ssh/openssh.py `LoginSpec.early`), and a process is used only
when the validated target asks for exactly the same login and interpreter
(bot/deploy/host/openssh.py `adopt`); otherwise, or when validation fails, it is stopped.
"""

from __future__ import annotations

import contextlib
import posixpath
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.deploy.host.warm import Ready, start_process
from bot.errors import GatebotError
from bot.ssh.openssh import LoginSpec, ssh_binary


@dataclass
class Early:
    name: str
    ready: Ready


def _targets(data: Any, asked: list[str]) -> list[tuple[str, Any]]:
    deploy = data.get("deploy") if isinstance(data, dict) else None
    targets = deploy.get("targets") if isinstance(deploy, dict) else None
    if not isinstance(targets, dict):
        return []
    names = sorted(str(n) for n in targets) if asked == ["all"] else asked
    rollout = deploy.get("rollout") if isinstance(deploy, dict) else None
    batch = rollout.get("batch_size", 1) if isinstance(rollout, dict) else 1
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        return []
    return [(n, targets.get(n)) for n in dict.fromkeys(names)][:batch]


def start_early(data: Any, asked: list[str], env: Mapping[str, str], base: Path) -> list[Early]:
    """Start `ssh` for the first batch of `asked` targets, where the raw config is plain enough;
    never raises (anything odd: that target simply connects later, as usual)."""
    ssh = ssh_binary()
    if ssh is None:
        return []
    started: list[Early] = []
    for name, raw in _targets(data, asked):
        spec = LoginSpec.early(raw)
        python = raw.get("python", "python3") if isinstance(raw, dict) else None
        root = raw.get("path") if isinstance(raw, dict) else None
        if spec is None or not isinstance(python, str) or not isinstance(root, str):
            continue
        if raw.get("ssh_client") == "asyncssh":
            continue
        try:
            ready = start_process(name, spec, python, posixpath.normpath(root), env, base, ssh)
            started.append(Early(name, ready))
        except (GatebotError, OSError):
            continue  # validation and the usual connection say what is wrong
    return started


def stop_early(early: list[Early]) -> None:
    """Stop processes nobody took (the config did not validate, say)."""
    for e in early:
        proc = e.ready.spawned.proc
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        for stop in (proc.terminate, proc.kill):  # SIGTERM first: see openssh.ProcessChannel
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        e.ready.spawned.login.close()
