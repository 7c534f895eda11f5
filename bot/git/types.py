"""What a diff is made of: one FileChange per changed path, its hunks and lines (bot/git/diff.py
produces them; the review stages read them). Plain frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChangeKind = Literal["added", "modified", "deleted", "renamed", "copied", "typechange"]


@dataclass(frozen=True)
class DiffLine:
    origin: Literal[" ", "+", "-"]
    old_lineno: int | None
    new_lineno: int | None
    content: str


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    header: str
    lines: tuple[DiffLine, ...]

    @property
    def added_lines(self) -> frozenset[int]:
        return frozenset(
            ln.new_lineno for ln in self.lines if ln.origin == "+" and ln.new_lineno is not None
        )

    def render(self) -> str:
        body = "".join(f"{ln.origin}{ln.content}" for ln in self.lines)
        return f"{self.header.rstrip()}\n{body}"


@dataclass(frozen=True)
class FileChange:
    path: str  # new path (old path for deletions)
    old_path: str | None  # set for renames/copies
    change: ChangeKind
    old_oid: str | None
    new_oid: str | None
    old_mode: int
    new_mode: int
    binary: bool
    old_size: int
    new_size: int
    hunks: tuple[Hunk, ...] = ()

    @property
    def changed_lines(self) -> frozenset[int]:
        out: set[int] = set()
        for h in self.hunks:
            out |= h.added_lines
        return frozenset(out)

    def render_diff(self) -> str:
        return "".join(h.render() for h in self.hunks)
