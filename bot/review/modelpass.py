"""The model's stages of a review: tiers to live models, a cache key per file, the cache,
batches, the provider's call, and its answers merged back into each file.

A file the provider could not answer for is marked "not reviewed" with the cause that can
least be waved through (bot/review/models.py `NotReviewedCause`); only a complete answer is
cached, also under a fallback model's key when one reviewed it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.review import ReviewConfig
from bot.errors import InfrastructureError
from bot.review import keys
from bot.review.batch import make_items, plan
from bot.review.cache import ReviewCache
from bot.review.cost import Spend
from bot.review.models import Finding, NotReviewedCause
from bot.review.prompt import PROMPT_VERSION, rules_hash
from bot.review.route import route, tiers_of
from bot.review.runstate import FileState, Warnings
from bot.review.tokens import Calibration
from bot.review.types import (
    Batch,
    ModelFallback,
    ModelPlan,
    Provider,
    ReviewItem,
    Usage,
)
from bot.review.verdict import most_severe


@dataclass
class ModelStats:
    usage: Usage = field(default_factory=Usage)
    spend: Spend = field(default_factory=Spend)
    batches: int = 0
    files_answered: int = 0  # sent and fully answered (all parts)
    plan: ModelPlan | None = None
    fallbacks: list[ModelFallback] = field(default_factory=list)


def file_key(f: FileState, model: str, review: ReviewConfig, rules: str) -> str:
    return keys.cache_key(
        path=f.path,
        old_path=f.change.old_path,
        old_hash=f.old_hash,
        new_hash=f.new_hash,
        old_mode=f.change.old_mode,
        new_mode=f.change.new_mode,
        view="whole" if f.decision.whole_file else "diff",
        model=model,
        prompt_version=PROMPT_VERSION,
        rules_hash=rules,
        context_lines=review.context_lines,
    )


def assign_keys(
    files: list[FileState], review: ReviewConfig, plan: ModelPlan | None = None
) -> list[FileState]:
    todo = [f for f in files if f.status != "skipped"]
    for f in todo:
        f.tier, f.model = route(f.change, f.new_text, review, plan)
        # Per file: a per-path instruction changes the keys of the files it applies to only.
        f.key = file_key(f, f.model, review, rules_hash(review, f.path))
    return todo


def _model_finding(finding: Finding, f: FileState) -> Finding:
    """A model finding attached to file `f`: our path, our idea of what the diff changed."""
    in_diff = finding.line is not None and finding.line in f.changed_lines
    return finding.model_copy(update={"path": f.path, "in_diff": in_diff, "source": "model"})


def review_with_model(
    todo: list[FileState],
    provider: Provider,
    cache: ReviewCache,
    review: ReviewConfig,
    warnings: Warnings,
    calibration: Calibration,
) -> ModelStats:
    stats = ModelStats()
    misses: list[FileState] = []
    # LRU eviction makes every hit a write (its access time): one transaction for all.
    with cache.batch():
        for f in todo:
            assert f.key is not None and f.model is not None
            hit = cache.get(f.key)
            if hit is not None:
                f.status = "cached"
                f.model = hit.model
                f.model_findings = [_model_finding(x, f) for x in hit.findings]
                f.summary = hit.summary
            else:
                misses.append(f)
    if not misses:
        return stats

    item_owner: dict[str, FileState] = {}
    items_of: dict[str, list[ReviewItem]] = defaultdict(list)
    items: list[ReviewItem] = []
    for f in misses:
        assert f.key is not None and f.tier is not None and f.model is not None
        for item in make_items(f.change, f.tier, f.model, f.key, review, calibration=calibration):
            item_owner[item.cache_key] = f
            items_of[f.path].append(item)
            items.append(item)
    batches: list[Batch] = plan(items, review, calibration)
    stats.batches = len(batches)
    for batch in batches:
        # pack() may move a lower tier's files into a stronger model's call: name who reviewed.
        for item in batch.items:
            item_owner[item.cache_key].model = batch.model

    answered: dict[str, list[Finding]] = {}
    summaries: dict[str, str] = {}
    failed: dict[str, str] = {}
    causes: dict[str, NotReviewedCause] = {}
    try:
        outcomes = provider.review(batches)
    except InfrastructureError as exc:
        outcomes = []
        warnings.add(f"the model provider failed: {exc.message}")
        failed = {item.cache_key: exc.message for item in items}
    for outcome in outcomes:
        answered.update(outcome.findings)
        summaries.update(outcome.summaries)
        failed.update(outcome.failed)
        stats.fallbacks += outcome.fallbacks
        for key, model in outcome.answered_by.items():
            if key in item_owner:
                item_owner[key].model = model  # a fallback model reviewed (part of) it
        causes.update(outcome.causes)
        for key, n in outcome.omitted.items():
            if key in item_owner:
                item_owner[key].findings_omitted += n
        for model, usage in outcome.usage_by_model.items():
            stats.usage = stats.usage + usage
            stats.spend.add(model, usage, review.prices)

    by_path = {f.path: f for f in misses}
    by_old_path = {f.change.old_path: f for f in misses if f.change.old_path}
    for key, findings in answered.items():
        if key not in item_owner:
            warnings.add(f"the provider answered for an item it was not asked about ({key[:16]})")
            continue
        for finding in findings:
            owner = by_path.get(finding.path) or by_old_path.get(finding.path)
            if owner is None:
                warnings.add(
                    f"dropped a model finding on {finding.path!r}: not a file sent for review"
                )
                continue
            owner.model_findings.append(_model_finding(finding, owner))

    for f in misses:  # a file split into parts: its parts' lines, in order
        lines = [summaries[it.cache_key] for it in items_of[f.path] if it.cache_key in summaries]
        f.summary = "; ".join(lines) if lines else None

    for f in misses:  # a file split into parts may gather more than one part's share
        _keep_most_severe(f, review.max_findings_per_file)
    fell_back = {
        item_owner[k].path: m for o in outcomes for k, m in o.answered_by.items() if k in item_owner
    }
    with cache.batch():
        for f in misses:
            _store_answer(f, items_of, answered, failed, causes, cache, stats)
            gone_to = fell_back.get(f.path)
            if f.covered and gone_to is not None:
                # Reviewed by a fallback model: also stored under that model's key, the one the
                # next run routes to (the gone model is remembered in the models list).
                own = [x for x in f.model_findings if x.path == f.path]
                key = file_key(f, gone_to, review, rules_hash(review, f.path))
                cache.put(key, gone_to, own, summary=f.summary)
    return stats


def _keep_most_severe(f: FileState, limit: int) -> None:
    if len(f.model_findings) > limit:
        f.findings_omitted += len(f.model_findings) - limit
        f.model_findings = most_severe(f.model_findings, limit)


def _store_answer(
    f: FileState,
    items_of: Mapping[str, list[ReviewItem]],
    answered: Mapping[str, list[Finding]],
    failed: Mapping[str, str],
    causes: Mapping[str, NotReviewedCause],
    cache: ReviewCache,
    stats: ModelStats,
) -> None:
    """Mark `f` covered or not from the provider's answers, and cache a complete answer."""
    problems = [
        (causes.get(item.cache_key, "provider"), failed.get(item.cache_key, "no answer"))
        for item in items_of[f.path]
        if item.cache_key not in answered or item.cache_key in failed
    ]
    if problems:
        # A file split into parts takes the cause that can least be waved through.
        order = ("content", "budget", "provider")
        cause, why = min(problems, key=lambda p: order.index(p[0]) if p[0] in order else 0)
        f.mark_not_reviewed(cause, f"not reviewed by the model: {why}")
        return
    assert f.key is not None and f.model is not None
    own = [x for x in f.model_findings if x.path == f.path]
    cache.put(f.key, f.model, own, summary=f.summary)
    stats.files_answered += 1


def plan_models(
    provider: Provider, review: ReviewConfig, cache_dir: Path, warnings: Warnings
) -> ModelPlan | None:
    """Tiers → live models, once per run (a rejected key leaves the plan out: every call is
    then refused the same way, and the files are listed as not covered)."""
    try:
        return provider.plan_models(tiers_of(review), list(review.fallback), cache_dir)
    except InfrastructureError as exc:
        warnings.add(f"the model provider failed: {exc.message}")
        return None
