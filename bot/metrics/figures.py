"""Per-run and rolling figures from history entries. Pure: entries in, numbers out.

Rolling figures are sums over the window first and ratios of those sums second (a 50-file run
weighs more than a 1-file run), so they can be recomputed by hand from the history lines:
- cost reduction   = 1 - sum(cost_usd) / sum(baseline_cost_usd)
- call reduction   = 1 - sum(api_calls) / sum(baseline_api_calls)
- cache hit rate   = sum(files_cached) / sum(files_cached + files_reviewed)
- files per call   = sum(files sent to the model) / sum(api_calls), a run's files sent being
                     its files_per_call x api_calls (the pipeline's own definition)
- error rate       = runs that ended in an error / all runs
- p50 / p95        = nearest rank: the ceil(p * n)-th smallest value
A ratio whose denominator is zero is None ("no data"), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.errors import UsageError
from bot.metrics.records import DeployEntry, ReviewEntry, is_error
from bot.review.models import Metrics

AnyEntry = ReviewEntry | DeployEntry


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _reduction(actual: float, baseline: float) -> float | None:
    return 1 - actual / baseline if baseline else None


def files_sent(m: Metrics) -> int:
    """Files the run sent to the model; Metrics keeps only the rounded per-call mean."""
    return round(m.files_per_call * m.api_calls)


# --- selecting the window ----------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """`7d`, `24h`, `30m`, `2w`, `90s`, or an ISO 8601 date/time (UTC when no zone is given)."""
    value = text.strip()
    if len(value) > 1 and value[-1] in _UNITS and value[:-1].isdigit():
        return now - timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is neither a duration nor an ISO 8601 time",
            hint="use e.g. 7d, 24h, 30m, 2w or 2026-11-01T00:00:00Z",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def select(
    entries: Iterable[AnyEntry], *, since: datetime | None = None, per_kind: int | None = None
) -> list[AnyEntry]:
    """Entries at or after `since`, then the newest `per_kind` of each kind; oldest first."""
    chosen = sorted((e for e in entries if since is None or e.ts >= since), key=lambda e: e.ts)
    if per_kind is None:
        return chosen
    seen: dict[str, int] = {}
    kept: list[AnyEntry] = []
    for entry in reversed(chosen):
        seen[entry.kind] = seen.get(entry.kind, 0) + 1
        if seen[entry.kind] <= per_kind:
            kept.append(entry)
    return kept[::-1]


# --- per run ------------------------------------------------------------------------------------


def run_figures(entry: AnyEntry) -> dict[str, Any]:
    """One run's figures, flat, for tables and JSON."""
    base: dict[str, Any] = {
        "ts": entry.ts.isoformat(),
        "run_id": entry.run_id,
        "kind": entry.kind,
    }
    if isinstance(entry, ReviewEntry):
        m = entry.metrics
        return base | {
            "outcome": entry.verdict,
            "provider": entry.provider,
            "degraded": entry.degraded,
            "api_calls": m.api_calls,
            "baseline_api_calls": m.baseline_api_calls,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "cached_tokens": m.cached_tokens,
            "cost_usd": m.cost_usd,
            "baseline_cost_usd": m.baseline_cost_usd,
            "saved_usd": m.baseline_cost_usd - m.cost_usd,
            "cost_reduction": _reduction(m.cost_usd, m.baseline_cost_usd),
            "cache_hit_rate": _ratio(m.files_cached, m.files_cached + m.files_reviewed),
            "files_per_call": _ratio(files_sent(m), m.api_calls),
            "files_total": m.files_total,
            "duration_s": m.duration_s,
        }
    return base | {
        "outcome": "ok" if entry.ok else "failed",
        "target": entry.target,
        "ref": entry.ref,
        "release": entry.release,
        "duration_s": entry.duration_s,
        "bytes_sent": entry.bytes_sent,
        "files_sent": entry.files_sent,
        "audit_duration_s": audit_duration(entry),
        "gtw_rtt_p50_ms": entry.gtw_rtt_p50_ms,
        "gtw_rtt_max_ms": entry.gtw_rtt_max_ms,
        "error": entry.error,
    }


def audit_duration(entry: DeployEntry) -> float | None:
    if entry.audit_duration_s is not None:
        return entry.audit_duration_s
    return entry.duration_s if entry.kind == "audit" else None


# --- rolling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFigures:
    runs: int
    api_calls: int
    baseline_api_calls: int
    call_reduction: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    saved_usd: float
    cost_reduction: float | None
    files_reviewed: int
    files_cached: int
    files_skipped: int
    cache_hit_rate: float | None
    files_per_call: float | None
    degraded_runs: int
    duration_p50_s: float | None
    duration_p95_s: float | None


@dataclass(frozen=True)
class DeployFigures:
    deploys: int
    rollbacks: int
    audits: int
    failed_deploys: int
    failed_audits: int
    deploy_duration_p50_s: float | None
    deploy_duration_p95_s: float | None
    bytes_sent: int
    files_sent: int
    audit_duration_p50_s: float | None
    audit_duration_p95_s: float | None
    gtw_rtt_p50_ms: float | None
    gtw_rtt_max_ms: float | None


@dataclass(frozen=True)
class Figures:
    runs: int
    errors: int
    error_rate: float | None
    first_ts: datetime | None
    last_ts: datetime | None
    review: ReviewFigures
    deploy: DeployFigures

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("first_ts", "last_ts"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def review_figures(entries: Sequence[AnyEntry]) -> ReviewFigures:
    reviews = [e for e in entries if isinstance(e, ReviewEntry)]
    ms = [e.metrics for e in reviews]
    calls = sum(m.api_calls for m in ms)
    base_calls = sum(m.baseline_api_calls for m in ms)
    cost = sum(m.cost_usd for m in ms)
    base_cost = sum(m.baseline_cost_usd for m in ms)
    reviewed = sum(m.files_reviewed for m in ms)
    cached = sum(m.files_cached for m in ms)
    durations = [m.duration_s for m in ms]
    return ReviewFigures(
        runs=len(reviews),
        api_calls=calls,
        baseline_api_calls=base_calls,
        call_reduction=_reduction(calls, base_calls),
        input_tokens=sum(m.input_tokens for m in ms),
        output_tokens=sum(m.output_tokens for m in ms),
        cached_tokens=sum(m.cached_tokens for m in ms),
        cost_usd=cost,
        baseline_cost_usd=base_cost,
        saved_usd=base_cost - cost,
        cost_reduction=_reduction(cost, base_cost),
        files_reviewed=reviewed,
        files_cached=cached,
        files_skipped=sum(m.files_skipped for m in ms),
        cache_hit_rate=_ratio(cached, cached + reviewed),
        files_per_call=_ratio(sum(files_sent(m) for m in ms), calls),
        degraded_runs=sum(1 for e in reviews if e.degraded),
        duration_p50_s=percentile(durations, 0.5),
        duration_p95_s=percentile(durations, 0.95),
    )


def _latest_gtw(entries: Sequence[DeployEntry]) -> float | None:
    with_rtt = [e.gtw_rtt_p50_ms for e in entries if e.gtw_rtt_p50_ms is not None]
    return with_rtt[-1] if with_rtt else None


def deploy_figures(entries: Sequence[AnyEntry]) -> DeployFigures:
    runs = [e for e in entries if isinstance(e, DeployEntry)]
    deploys = [e for e in runs if e.kind == "deploy"]
    audits = [e for e in runs if e.kind == "audit"]
    transfers = [e for e in runs if e.kind in ("deploy", "rollback")]
    audit_times = [d for d in (audit_duration(e) for e in runs) if d is not None]
    rtt_max = [e.gtw_rtt_max_ms for e in runs if e.gtw_rtt_max_ms is not None]
    deploy_times = [e.duration_s for e in deploys]
    return DeployFigures(
        deploys=len(deploys),
        rollbacks=sum(1 for e in runs if e.kind == "rollback"),
        audits=len(audits),
        failed_deploys=sum(1 for e in transfers if not e.ok),
        failed_audits=sum(1 for e in audits if not e.ok),
        deploy_duration_p50_s=percentile(deploy_times, 0.5),
        deploy_duration_p95_s=percentile(deploy_times, 0.95),
        bytes_sent=sum(e.bytes_sent for e in transfers),
        files_sent=sum(e.files_sent for e in transfers),
        audit_duration_p50_s=percentile(audit_times, 0.5),
        audit_duration_p95_s=percentile(audit_times, 0.95),
        gtw_rtt_p50_ms=_latest_gtw(runs),
        gtw_rtt_max_ms=max(rtt_max) if rtt_max else None,
    )


def figures(entries: Sequence[AnyEntry]) -> Figures:
    """Rolling figures over `entries` (already selected: see `select`)."""
    errors = sum(1 for e in entries if is_error(e))
    return Figures(
        runs=len(entries),
        errors=errors,
        error_rate=_ratio(errors, len(entries)),
        first_ts=min((e.ts for e in entries), default=None),
        last_ts=max((e.ts for e in entries), default=None),
        review=review_figures(entries),
        deploy=deploy_figures(entries),
    )
