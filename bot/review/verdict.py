"""The verdict and the metrics: pure functions over the per-file results.

- fail: a finding at or above the blocking severity, or a protected path changed while
  `review.protected.conclusion` is `failure`;
- neutral: infrastructure left files uncovered (they are named), or a protected path changed
  with `conclusion: neutral` — and nothing blocks;
- pass: otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.review import SEVERITY_ORDER, ReviewConfig, Severity
from bot.review.models import FileResult, Finding, Metrics, VerdictValue
from bot.review.types import Usage


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


def is_blocking(finding: Finding, blocking: Severity) -> bool:
    return severity_rank(finding.severity) >= severity_rank(blocking)


@dataclass(frozen=True)
class Decision:
    verdict: VerdictValue
    reasons: tuple[str, ...]


def decide(files: list[FileResult], config: ReviewConfig) -> Decision:
    blocking = [f for fr in files for f in fr.findings if is_blocking(f, config.blocking_severity)]
    protected = [fr.path for fr in files if fr.needs_human]
    uncovered = [fr.path for fr in files if not fr.covered]
    fail: list[str] = []
    neutral: list[str] = []
    if blocking:
        fail.append(f"{len(blocking)} finding(s) at or above {config.blocking_severity} severity")
    if protected:
        msg = f"protected path(s) changed, a human must review: {', '.join(protected)}"
        (fail if config.protected.conclusion == "failure" else neutral).append(msg)
    if uncovered:
        neutral.append(
            f"{len(uncovered)} file(s) not covered by the model reviewer: {', '.join(uncovered)}"
        )
    if fail:
        return Decision("fail", tuple(fail + neutral))
    if neutral:
        return Decision("neutral", tuple(neutral))
    return Decision("pass", ())


def compute_metrics(
    files: list[FileResult],
    *,
    usage: Usage,
    batches: int,
    files_reviewed_by_model: int,
    cost_usd: float,
    baseline_api_calls: int,
    baseline_cost_usd: float,
    duration_s: float,
) -> Metrics:
    reviewed = sum(1 for f in files if f.status == "reviewed")
    cached = sum(1 for f in files if f.status == "cached")
    skipped = sum(1 for f in files if f.status == "skipped")
    return Metrics(
        api_calls=usage.calls,
        batches=batches,
        files_total=len(files),
        files_reviewed=reviewed,
        files_cached=cached,
        files_skipped=skipped,
        cache_hit_rate=round(cached / (reviewed + cached), 4) if reviewed + cached else 0.0,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cost_usd=round(cost_usd, 6),
        baseline_api_calls=baseline_api_calls,
        baseline_cost_usd=round(baseline_cost_usd, 6),
        # Never clamped: a gate dearer than the naive review reads as a negative reduction.
        cost_reduction_rate=(
            round(1.0 - cost_usd / baseline_cost_usd, 4) if baseline_cost_usd > 0 else 0.0
        ),
        savings_usd=round(baseline_cost_usd - cost_usd, 6),
        thoughts_tokens=usage.thoughts_tokens,
        # Files the model answered per call made (re-asks and failed calls lower it).
        files_per_call=(round(files_reviewed_by_model / usage.calls, 3) if usage.calls else 0.0),
        duration_s=round(duration_s, 3),
    )
