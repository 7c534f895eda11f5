"""Builders for monitoring tests: verdicts shaped like the review pipeline's, deploy records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.review.models import Metrics, Verdict

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def verdict(
    *,
    reviewed: int,
    cached: int,
    skipped: int = 0,
    calls: int,
    cost: float,
    baseline_cost: float,
    duration: float = 1.0,
    degraded: bool = False,
    input_tokens: int = 1000,
    output_tokens: int = 100,
) -> Verdict:
    """A verdict whose metrics obey the pipeline's own definitions (per-run rates derived)."""
    eligible = reviewed + cached
    metrics = Metrics(
        api_calls=calls,
        batches=calls,
        files_total=reviewed + cached + skipped,
        files_reviewed=reviewed,
        files_cached=cached,
        files_skipped=skipped,
        cache_hit_rate=cached / eligible if eligible else 0.0,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        baseline_api_calls=eligible,
        baseline_cost_usd=baseline_cost,
        cost_reduction_rate=1 - cost / baseline_cost if baseline_cost else 0.0,
        files_per_call=reviewed / calls if calls else 0.0,
        duration_s=duration,
    )
    return Verdict(
        verdict="neutral" if degraded else "pass",
        base_sha="a" * 40,
        head_sha="b" * 40,
        provider="local" if degraded else "gemini",
        degraded=degraded,
        degraded_reason="provider unavailable: 503 after 3 attempts" if degraded else None,
        metrics=metrics,
    )
