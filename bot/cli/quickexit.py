"""Ending the `gatebot` process without tearing its modules down.

Python's shutdown frees every module and object one by one: after a `gatebot deploy`, with
pydantic's models and two manifests in memory, that is about 30 ms the user waits for after
everything is done (10,000 files, benchmarks/deploy_vs_rsync.py's tree). A command whose work
is finished and whose files are closed calls `allow()`; the entry point (bot/cli/main.py `run`)
then flushes the logs and the standard streams and ends with `os._exit` and the exit status the
command chose.
Anything that cannot be flushed falls back to the ordinary shutdown, which reports it; so does
a process under a profiler or a tracer (cProfile, coverage), which write their data at the end.
"""

from __future__ import annotations

import logging
import os
import sys

_allowed = False


def allow() -> None:
    """Called by a command once its output is written and its files and connections closed."""
    global _allowed
    _allowed = True


def reset() -> None:
    global _allowed
    _allowed = False


def exit_now(exc: SystemExit) -> None:
    """End the process with `exc`'s status if a command allowed it; else return (the caller
    re-raises `exc` and Python shuts down as usual)."""
    if not _allowed or sys.getprofile() is not None or sys.gettrace() is not None:
        return  # a profiler or coverage writes its data at the ordinary end
    try:
        code = status(exc)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        # A closed or broken stream (`gatebot deploy | head`): the ordinary shutdown reports
        # it the way Python always has, with its own status.
        return
    os._exit(code)


def status(exc: SystemExit) -> int:
    """The status Python gives a process that ends with `exc` (also a resident's child's,
    bot/cli/resident_server.py): SystemExit("text") prints the text and is status 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1
