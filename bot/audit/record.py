"""An audit report as one run-history record (bot.metrics.history.record_deploy).

The GTW round-trip figures come from the gtw layer's structured `data` (p50_ms, max_ms,
budget_ms, set by runtime_layers.judge_probe), so the history and the `gtw_rtt_over_budget`
alert see the same numbers the report shows.
"""

from __future__ import annotations

from typing import Any

from bot.audit.report import AuditReport
from bot.metrics.records import DeployRecord


def _ms(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    # bool is an int: never read a flag as a duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def audit_record(
    report: AuditReport, exit_code: int, error: str | None = None, budget_ms: float | None = None
) -> DeployRecord:
    """`exit_code` is what the run ends with (0 passed, 1 a layer failed, 2 the report could not
    be written); `error` its message, by default the failed layers' summary line when the audit
    failed. `budget_ms` is audit.gtw.budget_ms, used when the gtw layer did not report its own."""
    if error is None and not report.passed:
        error = report.summary_line()
    gtw = report.layer("gtw").data
    return DeployRecord(
        kind="audit",
        target=report.target,
        ref=report.ref,
        sha=report.sha,
        release=report.release,
        ok=report.passed,  # the host's state; a report file we could not write is `error`
        duration_s=report.duration_s,
        audit_duration_s=report.duration_s,
        gtw_rtt_p50_ms=_ms(gtw, "p50_ms"),
        gtw_rtt_max_ms=_ms(gtw, "max_ms"),
        gtw_budget_ms=_ms(gtw, "budget_ms") or budget_ms,
        error=error,
        exit_code=exit_code,
    )
