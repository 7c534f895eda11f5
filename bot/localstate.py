"""Folders gatebot creates in a user's working tree (the review cache, the run's outputs) carry
their own `.gitignore` holding `*`, as pytest, mypy and ruff do for theirs: `git add -A` after a
local run never commits them. Only a folder gatebot creates gets one; an existing folder (the
repository root, a user's own directory) is never touched."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.config.env import CACHE_DIR

GITIGNORE = "# created by gatebot: local state, never committed\n*\n"


def claim(directory: Path) -> Path:
    """Create `directory` (and its parents) if it is not there, with its `.gitignore`."""
    if directory.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return directory


#: The review cache and the run history, unless --cache-dir or $GATEBOT_CACHE_DIR say otherwise.
DEFAULT_CACHE_DIR = Path(".gatebot-cache")


def resolve_cache_dir(option: Path | None, env: Mapping[str, str]) -> Path:
    if option is not None:
        return option
    if env.get(CACHE_DIR):
        return Path(env[CACHE_DIR])
    return DEFAULT_CACHE_DIR
