"""Folders gatebot creates in a user's working tree (the review cache, the run's outputs) carry
their own `.gitignore` holding `*`, as pytest, mypy and ruff do for theirs: `git add -A` after a
local run never commits them. Only a folder gatebot creates gets one; an existing folder (the
repository root, a user's own directory) is never touched."""

from __future__ import annotations

from pathlib import Path

GITIGNORE = "# created by gatebot: local state, never committed\n*\n"


def claim(directory: Path) -> Path:
    """Create `directory` (and its parents) if it is not there, with its `.gitignore`."""
    if directory.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return directory
