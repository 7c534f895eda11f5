"""Doctor check: the review cache directory is writable; its size against the configured bound."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bot.config import GatebotConfig
from bot.localstate import resolve_cache_dir
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, failed, passed, warned
from bot.review.cache import CACHE_ENV

TITLE = "review cache"


def _size_bytes(directory: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except OSError:
                continue  # a file evicted while we walk is simply not counted
    return total


def _writable(directory: Path) -> str | None:
    """None when a file can be created in `directory`, else the reason."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".gatebot-doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_cache(ctx: DoctorContext, config: GatebotConfig) -> CheckResult:
    directory = resolve_cache_dir(None, ctx.env)
    if not directory.is_absolute():
        directory = ctx.root / directory
    fix = f"make {directory} writable, or point {CACHE_ENV} at a writable directory"
    if not directory.exists():
        parent = directory.parent
        while not parent.exists():
            parent = parent.parent
        reason = _writable(parent)
        if reason:
            return failed("cache", TITLE, f"{directory} cannot be created: {reason}", fix)
        return passed("cache", TITLE, f"{directory} does not exist yet; it will be created")
    if not directory.is_dir():
        return failed("cache", TITLE, f"{directory} exists and is not a directory", fix)
    reason = _writable(directory)
    if reason:
        return failed("cache", TITLE, f"{directory} is not writable: {reason}", fix)
    size_mb = _size_bytes(directory) / 1_000_000
    limit = config.review.cache_max_mb
    detail = f"{directory} writable, {size_mb:.1f} MB of {limit} MB"
    if size_mb > limit * 1.1:
        return warned(
            "cache",
            TITLE,
            f"{detail}: above the bound (eviction trims it on the next write)",
            "raise review.cache_max_mb, or delete the directory to start afresh",
        )
    return passed("cache", TITLE, detail)
