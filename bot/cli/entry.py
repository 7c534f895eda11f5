"""The `gatebot` command (pyproject.toml): a deploy command goes to the resident gatebot when
one is up (bot/cli/resident.py); everything else, and a deploy without a resident, runs here
(bot/cli/main.py `run`). Nothing heavier than the standard library's sockets is imported
before that choice."""

from __future__ import annotations

import os
import sys


def run() -> None:
    from bot.cli import resident

    code = resident.forward(sys.argv[1:])
    if code is None:
        from bot.cli.main import run as run_here

        run_here()
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # as Python reports a stream it could not flush at exit
    os._exit(code)
