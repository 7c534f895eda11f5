"""The verdict and the metrics: pure functions over the per-file results.

Fail closed (docs/review.md, "Verdict"): GitHub counts `success`, `neutral` and `skipped` as
passing a required check, so anything nobody reviewed must not end there by default.
- fail: a finding at or above the blocking severity; a protected path changed while
  `review.protected.conclusion` is `failure` (the default); a changed file no reviewer
  covered, unless `review.unreviewed: neutral` opens the gate for its cause;
- neutral: only what the base config explicitly opened (a protected path with
  `conclusion: neutral`; files unreviewed for want of a model with `unreviewed: neutral`);
- pass: otherwise.
Content and budget causes never open: a PR author can provoke them (an oversize or binary
file, a prompt the model refuses, a diff that exhausts the call cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.config.review import SEVERITY_ORDER, ReviewConfig, Severity
from bot.review.models import (
    NOT_REVIEWED_CAUSES,
    FileResult,
    Finding,
    Metrics,
    NotReviewedCause,
    VerdictValue,
)
from bot.review.types import Usage

# Causes `review.unreviewed: neutral` may let through: no model was there to ask.
FAIL_OPEN_CAUSES: frozenset[NotReviewedCause] = frozenset({"provider", "no_model"})
# What each cause means, for titles and summaries (plain text).
CAUSE_TEXT: dict[NotReviewedCause, str] = {
    "content": "content: the PR's own files (a PR author can cause this)",
    "provider": "provider: the model failed after retries (outage, quota, refusal)",
    "budget": "budget: the run's call cap was reached",
    "no_model": "no model in this run (no API key; fork PRs get no secrets)",
}
CAUSE_SHORT: dict[NotReviewedCause, str] = {
    "content": "content",
    "provider": "provider outage",
    "budget": "call cap",
    "no_model": "no model key",
}
_LISTED = 20  # paths named in a reason; the rest are counted (all are in verdict.json)


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


def is_blocking(finding: Finding, blocking: Severity) -> bool:
    return severity_rank(finding.severity) >= severity_rank(blocking)


def most_severe(findings: Sequence[Finding], limit: int) -> list[Finding]:
    """The `limit` most severe findings, most severe first, then by path and line (stable)."""
    ordered = sorted(findings, key=lambda f: (-severity_rank(f.severity), f.path, f.line or 0))
    return ordered[:limit]


@dataclass(frozen=True)
class Decision:
    verdict: VerdictValue
    reasons: tuple[str, ...]


def not_reviewed_by_cause(
    files: Sequence[FileResult],
) -> dict[NotReviewedCause, list[FileResult]]:
    """The files no reviewer covered, by cause, in the order of NOT_REVIEWED_CAUSES."""
    groups: dict[NotReviewedCause, list[FileResult]] = {}
    for fr in files:
        if fr.not_reviewed is not None:
            groups.setdefault(fr.not_reviewed.cause, []).append(fr)
    return {c: groups[c] for c in NOT_REVIEWED_CAUSES if c in groups}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def not_reviewed_headline(files: Sequence[FileResult]) -> str | None:
    """`not reviewed: 3 files (content 2, provider outage 1)`; None when all were covered."""
    groups = not_reviewed_by_cause(files)
    if not groups:
        return None
    total = sum(len(g) for g in groups.values())
    if set(groups) == {"no_model"}:
        return f"not reviewed by a model: {_plural(total, 'file')} (no model key in this run)"
    causes = ", ".join(f"{CAUSE_SHORT[c]} {len(g)}" for c, g in groups.items())
    return f"not reviewed: {_plural(total, 'file')} ({causes})"


def _listed(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_LISTED])
    more = len(paths) - _LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def decide(files: list[FileResult], config: ReviewConfig) -> Decision:
    blocking = [f for fr in files for f in fr.findings if is_blocking(f, config.blocking_severity)]
    protected = [fr.path for fr in files if fr.needs_human]
    fail: list[str] = []
    neutral: list[str] = []
    if blocking:
        fail.append(f"{len(blocking)} finding(s) at or above {config.blocking_severity} severity")
    for cause, group in not_reviewed_by_cause(files).items():
        opened = config.unreviewed == "neutral" and cause in FAIL_OPEN_CAUSES
        msg = (
            f"not reviewed: {_plural(len(group), 'file')}, {CAUSE_TEXT[cause]}"
            f"{' (review.unreviewed: neutral lets it pass)' if opened else ''}: "
            f"{_listed([fr.path for fr in group])}"
        )
        (neutral if opened else fail).append(msg)
    if protected:
        msg = (
            "protected path(s) changed, a maintainer must approve this head commit: "
            f"{_listed(protected)}"
        )
        (fail if config.protected.conclusion == "failure" else neutral).append(msg)
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
    api_calls_cap: int = 0,
    findings_omitted: int = 0,
) -> Metrics:
    # Four counts that add up to files_total: a file no reviewer covered (a cap, an outage, an
    # oversize file) is counted as not reviewed only, never also as reviewed or skipped — a
    # summary reading "6 reviewed" when a cap left 4 of them unseen was a false comfort.
    reviewed = sum(1 for f in files if f.status == "reviewed" and f.not_reviewed is None)
    cached = sum(1 for f in files if f.status == "cached" and f.not_reviewed is None)
    skipped = sum(1 for f in files if f.status == "skipped" and f.not_reviewed is None)
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
        files_not_reviewed=sum(1 for f in files if f.not_reviewed is not None),
        api_calls_cap=api_calls_cap,
        findings_omitted=findings_omitted + sum(f.findings_omitted for f in files),
    )
