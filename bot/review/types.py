"""Internal value types shared by the review pipeline stages.

Stage ownership (one module each): bot/git/diff.py produces FileChange (its types live in
bot/git/types.py and are re-exported here); triage.py decides what needs a model; route.py
gives a tier and model; cache.py looks up results; batch.py packs ReviewItems into Batches;
providers/ turn Batches into BatchOutcomes; verdict.py decides.
All of these are plain frozen dataclasses so stages stay pure functions over values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.git.types import ChangeKind as ChangeKind
from bot.git.types import DiffLine as DiffLine
from bot.git.types import FileChange as FileChange
from bot.git.types import Hunk as Hunk
from bot.review.models import Finding, NotReviewedCause


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
    output_tokens: int = 0  # candidatesTokenCount + thoughtsTokenCount (both billed as output)
    cached_tokens: int = 0
    thoughts_tokens: int = 0  # thoughtsTokenCount: part of output_tokens
    # The part of the above from calls whose prompt was over the long-context threshold
    # (billed at the long-context rates where a model has them).
    input_tokens_long: int = 0
    output_tokens_long: int = 0
    cached_tokens_long: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )

    def long_part(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens_long,
            output_tokens=self.output_tokens_long,
            cached_tokens=self.cached_tokens_long,
        )

    def short_part(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens - self.input_tokens_long,
            output_tokens=self.output_tokens - self.output_tokens_long,
            cached_tokens=self.cached_tokens - self.cached_tokens_long,
        )


@dataclass(frozen=True)
class ModelFallback:
    """A model that was unavailable during the run, and where its files went instead."""

    tier: str
    from_model: str
    to_model: str | None  # None: nothing left to fall back to (the files are not reviewed)
    reason: str
    files: int


@dataclass(frozen=True)
class BatchOutcome:
    batch: Batch
    # keyed by ReviewItem.cache_key; an item absent from both dicts was never answered
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # cache_key -> why it is uncovered
    # cache_key -> the cause of a failure, when it is not "provider" (e.g. "content" for a
    # safety block, "budget" past the call cap); bot/review/models.py: NotReviewedCause
    causes: dict[str, NotReviewedCause] = field(default_factory=dict)
    # cache_key -> model findings past review.max_findings_per_file, dropped (the most severe
    # are kept)
    omitted: dict[str, int] = field(default_factory=dict)
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    # the model that answered each item, where it differs from batch.model (a fallback)
    answered_by: dict[str, str] = field(default_factory=dict)
    fallbacks: list[ModelFallback] = field(default_factory=list)
    # cache_key -> the model's one-line summary of the change (the walkthrough)
    summaries: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPlan:
    """Which live model reviews each tier, and what to try when it is unavailable.

    `chains[tier]` lists the tier's candidates, the first being the one routed to; a model
    that turns out to be gone moves its files along `fallback_order(tier)`: the rest of the
    tier's chain, then the next tiers' (bot/review/providers/resolve.py documents the order).
    """

    chains: dict[str, tuple[str, ...]]
    order: dict[str, tuple[str, ...]]  # tier -> tiers to fall back through, own tier first
    extra: tuple[str, ...] = ()  # review.fallback: tried after every tier chain
    source: str = "configured"
    notes: tuple[str, ...] = ()

    def primary(self, tier: str) -> str | None:
        chain = self.chains.get(tier, ())
        return chain[0] if chain else None

    def fallback_order(self, tier: str) -> list[str]:
        out: list[str] = []
        for t in self.order.get(tier, (tier,)):
            out += [m for m in self.chains.get(t, ()) if m not in out]
        return out + [m for m in self.extra if m not in out]

    def next_model(self, tier: str, gone: set[str] | frozenset[str]) -> str | None:
        return next((m for m in self.fallback_order(tier) if m not in gone), None)


class Provider(Protocol):
    """A model provider. Implementations handle retries, per-file retry, concurrency and
    moving work off a model that turns out to be gone (a ModelPlan's fallback order)."""

    name: str
    # The key the review cache seals its rows with (bot/review/cache.py): derived from a
    # secret only this run holds, so rows restored from actions/cache that it did not write
    # (or a run with the same secret) are not trusted.
    cache_seal: bytes

    def plan_models(self, tiers: dict[str, str], fallback: list[str], cache_dir: Path) -> ModelPlan:
        """Resolve each tier's configured family or id to live models (once per run)."""
        ...

    def review(self, batches: list[Batch]) -> list[BatchOutcome]: ...
