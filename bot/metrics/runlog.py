"""The runbook's one-line log, for people who `tail -f` it. Each review appends one line: a UTC
timestamp, then exactly the runbook's `api_calls: 3, cached_files: 47, cache_hit_rate: 0.94,
cost_reduction_rate: 0.94`, so the runbook's `grep cost_reduction` still works.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from bot.review.models import Metrics


def format_line(metrics: Metrics, when: datetime) -> str:
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{stamp} api_calls: {metrics.api_calls}, cached_files: {metrics.files_cached}, "
        f"cache_hit_rate: {metrics.cache_hit_rate:.2f}, "
        f"cost_reduction_rate: {metrics.cost_reduction_rate:.2f}"
    )


def append_line(path: Path, metrics: Metrics, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (format_line(metrics, when) + "\n").encode("utf-8"))
    finally:
        os.close(fd)
