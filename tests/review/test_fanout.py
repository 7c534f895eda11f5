"""fork_map: real forked workers, results in order, a failing worker's share redone here."""

from __future__ import annotations

import os

from bot.review.fanout import fork_map, usable_cores


def test_results_come_back_in_order_from_real_children() -> None:
    parent = os.getpid()
    out = fork_map(lambda k: (k, os.getpid() != parent), 3)
    assert out == [(0, False), (1, True), (2, True)]


def test_a_failing_worker_is_redone_in_this_process() -> None:
    parent = os.getpid()

    def work(k: int) -> int:
        if os.getpid() != parent:
            raise RuntimeError("the worker dies")
        return k * 10

    assert fork_map(work, 3) == [0, 10, 20]


def test_one_part_runs_here() -> None:
    assert fork_map(lambda k: os.getpid(), 1) == [os.getpid()]
    assert usable_cores() >= 1
