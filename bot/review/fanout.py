"""Sharing the free, per-file stages of a large review between the machine's cores.

Reading, triaging and checking 1,000 changed files is pure CPU work in Python, one file at a
time; a forked worker takes every other file. Forking (not a process pool) means no start-up,
no re-import and nothing to send to the worker: it already has everything. Its results come
back pickled through a pipe (from our own process image, so trusted). A worker that fails in
any way is not an error: its share is simply done here.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def fork_map(work: Callable[[int], T], parts: int) -> list[T]:
    """[work(0), ..., work(parts - 1)]: work(0) here, the others in forked children."""
    if parts <= 1 or not hasattr(os, "fork"):
        return [work(k) for k in range(max(parts, 1))]
    # A collection in the child would touch every object inherited from the parent, copying
    # the pages the fork shares: move them out of the collector's reach until all is back.
    # The work itself allocates many small, short-lived, acyclic objects: no collection while
    # it runs (the next one after it frees whatever cycles it made).
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        return _fork_map(work, parts)
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _fork_map(work: Callable[[int], T], parts: int) -> list[T]:
    children: list[tuple[int, int, int]] = []
    for k in range(1, parts):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, and leave without the parent's cleanup
            code = 1
            try:
                os.close(read_end)
                data = pickle.dumps(work(k), pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_end, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((k, pid, read_end))
    results: dict[int, T] = {}
    try:
        results[0] = work(0)
    finally:
        for k, pid, read_end in children:
            got: tuple[T] | None = _collect(pid, read_end)
            if got is not None:
                results[k] = got[0]
    for k in range(1, parts):
        if k not in results:
            log.debug("worker %d failed; doing its share in this process", k)
            results[k] = work(k)
    return [results[k] for k in range(parts)]


def _collect(pid: int, read_end: int) -> tuple[T] | None:
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        return None
    try:
        return (pickle.loads(data),)  # noqa: S301 - written by our own forked child
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError):
        return None
