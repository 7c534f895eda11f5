"""A run's cost figures, the gate and the naive before on the same basis (docs/cost.md).

- The naive before is one call per changed file with its whole content, no cache, all on the
  model the standard tier resolved to (what the runbook's bridge used), priced from the same
  table on the same day.
- Thinking is billed as output on both sides: the naive calls are charged the thinking this
  run's calls really did, per call (thoughtsTokenCount); a run that made no call uses the
  same per-call estimate the gate budgets with (bot/review/tokens.py).
- A gate dearer than naive shows a negative saving; a model without a known price makes the
  cost unknown (named in the metrics and warned about), never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.config.review import ReviewConfig
from bot.review.cost import Spend, baseline_of, today_utc
from bot.review.models import ModelFallbackRecord
from bot.review.providers.resolve import plan as resolve_plan
from bot.review.route import model_for, tiers_of
from bot.review.tokens import estimated_thoughts
from bot.review.types import ModelFallback, ModelPlan, Usage


@dataclass(frozen=True)
class Baseline:
    calls: int
    usd: float | None  # None: the standard model has no known price
    model: str


def thoughts_per_call(usage: Usage, model: str, review: ReviewConfig) -> int:
    """Thinking per call: what this run's calls did, else the configured level's estimate."""
    if usage.calls:
        return round(usage.thoughts_tokens / usage.calls)
    return estimated_thoughts(model, review.gemini)


def naive_baseline(
    file_tokens: Sequence[int], usage: Usage, review: ReviewConfig, plan: ModelPlan | None
) -> Baseline:
    if plan is None:  # no provider (local review): the standard tier per the built-in lineup
        plan = resolve_plan(tiers_of(review), [], None, today=today_utc())
    model = model_for("standard", review, plan)
    calls, usd = baseline_of(
        file_tokens, model, review.prices, thoughts_per_call(usage, model, review)
    )
    return Baseline(calls, usd, model)


def fallback_records(events: Iterable[ModelFallback]) -> list[ModelFallbackRecord]:
    """One record per (tier, from, to), with the files that moved added up."""
    merged: dict[tuple[str, str, str | None], ModelFallbackRecord] = {}
    files: dict[tuple[str, str, str | None], int] = defaultdict(int)
    for e in events:
        key = (e.tier, e.from_model, e.to_model)
        files[key] += e.files
        merged.setdefault(
            key,
            ModelFallbackRecord(
                tier=e.tier, from_model=e.from_model, to_model=e.to_model, reason=e.reason
            ),
        )
    return [r.model_copy(update={"files": files[k]}) for k, r in merged.items()]


def cost_updates(
    spend: Spend, baseline: Baseline, plan: ModelPlan | None, fallbacks: list[ModelFallback]
) -> tuple[dict[str, object], list[str]]:
    """Metrics fields beyond compute_metrics', and the warnings they call for."""
    warnings: list[str] = []
    unpriced = sorted(spend.unpriced)
    if baseline.usd is None and baseline.model not in unpriced:
        unpriced.append(baseline.model)
    if unpriced:
        warnings.append(
            f"cost unknown: no price for {', '.join(unpriced)} (add it under review.prices; "
            "docs/cost.md); the cost figures leave these calls out"
        )
    known = not unpriced
    updates: dict[str, object] = {
        "cost_known": known,
        "unpriced_models": unpriced,
        "model_fallbacks": fallback_records(fallbacks),
    }
    if plan is not None:
        updates["models"] = {t: m for t in plan.chains if (m := plan.primary(t)) is not None}
    if not known:
        updates["cost_reduction_rate"] = 0.0
        updates["savings_usd"] = 0.0
    return updates, warnings


def fallback_warnings(plan: ModelPlan | None, fallbacks: list[ModelFallback]) -> list[str]:
    out = list(plan.notes) if plan is not None else []
    for r in fallback_records(fallbacks):
        to = r.to_model or "no model (not reviewed)"
        out.append(f"model fallback ({r.tier}): {r.from_model} → {to} for {r.files} file(s)")
    return out


__all__ = ["Baseline", "cost_updates", "fallback_warnings", "model_for", "naive_baseline"]
