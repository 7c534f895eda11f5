"""Internal value types shared by the review pipeline stages.

Stage ownership (one module each): bot/git/diff.py produces FileChange; triage.py decides
what needs a model; route.py gives a tier and model; cache.py looks up results; batch.py packs
ReviewItems into Batches; providers/ turn Batches into BatchOutcomes; verdict.py decides.
All of these are plain frozen dataclasses so stages stay pure functions over values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.review.models import Finding

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


@dataclass(frozen=True)
class ReviewItem:
    """One unit of model work: a file, or a part of a file split by hunks when too large."""

    path: str
    diff_text: str  # the hunks with context that go into the prompt
    changed_lines: frozenset[int]
    tier: str
    model: str
    cache_key: str
    est_tokens: int
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class Batch:
    tier: str
    model: str
    items: tuple[ReviewItem, ...]
    est_tokens: int


@dataclass(frozen=True)
class Usage:
    calls: int = 0
    input_tokens: int = 0  # promptTokenCount: includes cached tokens
    output_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class BatchOutcome:
    batch: Batch
    # keyed by ReviewItem.cache_key; an item absent from both dicts was never answered
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # cache_key -> why it is uncovered
    usage_by_model: dict[str, Usage] = field(default_factory=dict)


class Provider(Protocol):
    """A model provider. Implementations handle retries, per-file retry and concurrency."""

    name: str

    def review(self, batches: list[Batch]) -> list[BatchOutcome]: ...
