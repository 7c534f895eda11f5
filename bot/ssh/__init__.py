"""SSH transport shared by deploy, audit and doctor: pinned host keys, key auth, one connection.

Two clients: asyncssh in-process (bot/ssh/session.py, bot/ssh/credentials.py) and OpenSSH's
`ssh` command (bot/ssh/openssh.py). The names below are loaded on first use, so a command that
reaches its host through `ssh` never imports asyncssh (~0.2 s of start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.ssh.credentials import Credentials, load_credentials
    from bot.ssh.session import CommandResult, SSHSession, open_session

__all__ = ["CommandResult", "Credentials", "SSHSession", "load_credentials", "open_session"]

_HOME = {
    "Credentials": "bot.ssh.credentials",
    "load_credentials": "bot.ssh.credentials",
    "CommandResult": "bot.ssh.session",
    "SSHSession": "bot.ssh.session",
    "open_session": "bot.ssh.session",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.ssh' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
