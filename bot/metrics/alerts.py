"""Alerts: which figures left their band. Pure: selected entries and thresholds in, alerts out.

Each alert compares one figure with one threshold and fires only strictly past it, so a value
exactly at the threshold is still fine (cost reduction 0.80 with a 0.80 minimum does not fire;
0.7999 does). Windowed alerts look at the entries they are given (the newest N of each kind, see
figures.select); the state alerts (deploy, audit, GTW) look at the latest run of each target, so
they clear as soon as a run passes again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot.config.audit import GtwConfig
from bot.config.metrics import AlertsConfig
from bot.metrics.figures import AnyEntry, review_figures
from bot.metrics.records import DeployEntry, ReviewEntry, is_infrastructure_error

ALERT_IDS = (
    "cost_reduction_low",
    "cache_hit_rate_low",
    "cache_hit_rate_high",
    "infrastructure_error",
    "degraded_reviewer",
    "deploy_failing",
    "audit_failing",
    "gtw_rtt_over_budget",
)

DEFAULT_GTW_BUDGET_MS = float(GtwConfig.model_fields["budget_ms"].default)
_MAX_DETAIL = 200


def _q(value: float) -> float:
    # Ratios of float sums carry noise (0.2 + 0.2 + 0.2 != 0.6): a figure that is at its threshold
    # up to that noise counts as at it.
    return round(value, 9)


@dataclass(frozen=True)
class Alert:
    id: str
    message: str
    value: float
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _ratio_alerts(entries: Sequence[AnyEntry], cfg: AlertsConfig) -> list[Alert]:
    fig = review_figures(entries)
    if fig.runs < cfg.min_runs:
        return []
    found: list[Alert] = []
    over = f"over the last {fig.runs} reviews"
    if fig.cost_reduction is not None and _q(fig.cost_reduction) < cfg.min_cost_reduction:
        found.append(
            Alert(
                "cost_reduction_low",
                f"cost reduction {fig.cost_reduction:.2f} {over} is below "
                f"{cfg.min_cost_reduction:.2f} (${fig.cost_usd:.4f} spent vs "
                f"${fig.baseline_cost_usd:.4f} naive)",
                fig.cost_reduction,
                cfg.min_cost_reduction,
            )
        )
    rate = fig.cache_hit_rate
    if rate is not None and _q(rate) < cfg.hit_rate_min:
        found.append(
            Alert(
                "cache_hit_rate_low",
                f"cache hit rate {rate:.2f} {over} is below {cfg.hit_rate_min:.2f}",
                rate,
                cfg.hit_rate_min,
            )
        )
    if rate is not None and _q(rate) > cfg.hit_rate_max:
        found.append(
            Alert(
                "cache_hit_rate_high",
                f"cache hit rate {rate:.2f} {over} is above {cfg.hit_rate_max:.2f}: "
                "almost nothing reaches the model; check that the cache key still sees changes",
                rate,
                cfg.hit_rate_max,
            )
        )
    return found


def _event_alerts(entries: Sequence[AnyEntry], cfg: AlertsConfig) -> list[Alert]:
    found: list[Alert] = []
    errors = [e for e in entries if isinstance(e, DeployEntry) and is_infrastructure_error(e)]
    if len(errors) > cfg.max_errors:
        last = errors[-1]
        found.append(
            Alert(
                "infrastructure_error",
                f"{len(errors)} run(s) ended in an infrastructure error (latest: {last.kind} "
                f"{last.target} at {last.ts:%Y-%m-%d %H:%M}Z: "
                f"{_short(last.error) or f'exit code {last.exit_code}'})",
                len(errors),
                cfg.max_errors,
            )
        )
    degraded = [e for e in entries if isinstance(e, ReviewEntry) and e.degraded]
    if len(degraded) > cfg.max_degraded_runs:
        reason = _short(degraded[-1].degraded_reason) or "no reason recorded"
        found.append(
            Alert(
                "degraded_reviewer",
                f"{len(degraded)} review(s) fell back to the local reviewer "
                f"(latest: {degraded[-1].provider}, {reason})",
                len(degraded),
                cfg.max_degraded_runs,
            )
        )
    return found


def _state_alerts(entries: Sequence[AnyEntry], cfg: AlertsConfig) -> list[Alert]:
    latest_deploy: dict[str, DeployEntry] = {}
    latest_audit: dict[str, DeployEntry] = {}
    latest_rtt: dict[str, DeployEntry] = {}
    for e in entries:
        if not isinstance(e, DeployEntry):
            continue
        if e.kind in ("deploy", "rollback"):
            latest_deploy[e.target] = e
        # A deploy that ran the audit (its last phase) is an audit result too.
        if e.kind == "audit" or e.audit_duration_s is not None:
            latest_audit[e.target] = e
        if e.gtw_rtt_p50_ms is not None:
            latest_rtt[e.target] = e
    found: list[Alert] = []
    for target, run in sorted(latest_deploy.items()):
        if not run.ok:
            found.append(
                Alert(
                    "deploy_failing",
                    f"the latest {run.kind} of {target} ({run.ts:%Y-%m-%d %H:%M}Z) failed"
                    + (f": {_short(run.error)}" if run.error else ""),
                    1,
                    0,
                )
            )
    for target, audit in sorted(latest_audit.items()):
        if not audit.ok:
            detail = f": {_short(audit.error)}" if audit.error else ""
            found.append(
                Alert(
                    "audit_failing",
                    f"the latest audit of {target} (release {audit.release or '?'}, "
                    f"{audit.ts:%Y-%m-%d %H:%M}Z) failed{detail}",
                    1,
                    0,
                )
            )
    for target, e in sorted(latest_rtt.items()):
        budget = cfg.gtw_rtt_budget_ms or e.gtw_budget_ms or DEFAULT_GTW_BUDGET_MS
        rtt = e.gtw_rtt_p50_ms
        if rtt is not None and _q(rtt) > budget:
            found.append(
                Alert(
                    "gtw_rtt_over_budget",
                    f"GTW round trip from {target}: p50 {rtt:.1f} ms is over the "
                    f"{budget:g} ms budget (max {e.gtw_rtt_max_ms or rtt:.1f} ms)",
                    rtt,
                    budget,
                )
            )
    return found


def evaluate(entries: Sequence[AnyEntry], cfg: AlertsConfig) -> list[Alert]:
    """Firing alerts for already-selected entries (oldest first), in ALERT_IDS order."""
    found = _ratio_alerts(entries, cfg) + _event_alerts(entries, cfg) + _state_alerts(entries, cfg)
    return sorted(found, key=lambda a: ALERT_IDS.index(a.id))
