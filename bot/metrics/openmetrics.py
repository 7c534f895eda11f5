"""OpenMetrics / Prometheus exposition of the rolling figures and the alert states.

Everything is a gauge: the history is a bounded window, not a monotonic counter. A figure with no
data (a ratio over zero runs) is left out rather than exported as 0. The node_exporter textfile is
written by prometheus_client's own `write_to_textfile` (temporary file + rename, so the collector
never reads half a file).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client import generate_latest as prometheus_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from bot.config.metrics import MetricsConfig
from bot.metrics.alerts import ALERT_IDS, Alert, evaluate
from bot.metrics.figures import AnyEntry, Figures, figures, select

PREFIX = "gatebot_"
RUN_KINDS = ("review", "deploy", "rollback", "audit")


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is None:
        return
    family = GaugeMetricFamily(PREFIX + name, doc)
    family.add_metric([], float(value))
    yield family


class _FiguresCollector(Collector):
    def __init__(self, fig: Figures, kinds: dict[str, int], firing: Sequence[Alert]) -> None:
        self._fig = fig
        self._kinds = kinds
        self._firing = {a.id for a in firing}

    def collect(self) -> Iterator[Metric]:
        fig, r, d = self._fig, self._fig.review, self._fig.deploy
        runs = GaugeMetricFamily(PREFIX + "window_runs", "Runs in the window", labels=["kind"])
        for kind in RUN_KINDS:
            runs.add_metric([kind], self._kinds.get(kind, 0))
        yield runs
        if fig.last_ts is not None:
            yield from _gauge(
                "last_run_timestamp_seconds", "Time of the newest run", fig.last_ts.timestamp()
            )

        def ms_to_s(value: float | None) -> float | None:
            return None if value is None else value / 1000

        head: list[tuple[str, str, float | None]] = [
            ("runs_errored", "Runs that ended in an error", fig.errors),
            ("error_ratio", "Runs that ended in an error / runs", fig.error_rate),
            ("review_api_calls", "Model calls", r.api_calls),
            ("review_baseline_api_calls", "Naive calls (one per file)", r.baseline_api_calls),
        ]
        tail: list[tuple[str, str, float | None]] = [
            ("review_cost_usd", "Model cost in USD", r.cost_usd),
            ("review_baseline_cost_usd", "Naive cost in USD", r.baseline_cost_usd),
            ("review_saved_usd", "Naive cost minus actual cost", r.saved_usd),
            ("review_cost_reduction_ratio", "1 - cost / naive cost", r.cost_reduction),
            ("review_call_reduction_ratio", "1 - calls / naive calls", r.call_reduction),
            ("review_cache_hit_ratio", "Cached files / (cached + reviewed)", r.cache_hit_rate),
            ("review_files_per_call", "Reviewed files per call", r.files_per_call),
            ("review_degraded_runs", "Reviews by the fallback", r.degraded_runs),
            ("review_duration_p50_seconds", "Gate duration p50", r.duration_p50_s),
            ("review_duration_p95_seconds", "Gate duration p95", r.duration_p95_s),
            ("deploy_failed_runs", "Failed deploys/rollbacks", d.failed_deploys),
            ("audit_failed_runs", "Failed audits", d.failed_audits),
            ("deploy_duration_p50_seconds", "Deploy duration p50", d.deploy_duration_p50_s),
            ("deploy_duration_p95_seconds", "Deploy duration p95", d.deploy_duration_p95_s),
            ("deploy_sent_bytes", "Bytes sent by deploys/rollbacks", d.bytes_sent),
            ("deploy_sent_files", "Files sent by deploys/rollbacks", d.files_sent),
            ("audit_duration_p50_seconds", "Audit duration p50", d.audit_duration_p50_s),
            ("audit_duration_p95_seconds", "Audit duration p95", d.audit_duration_p95_s),
            ("gtw_rtt_p50_seconds", "GTW round trip p50, latest audit", ms_to_s(d.gtw_rtt_p50_ms)),
            ("gtw_rtt_max_seconds", "GTW round trip max", ms_to_s(d.gtw_rtt_max_ms)),
        ]
        for name, doc, value in head:
            yield from _gauge(name, doc, value)
        tokens = GaugeMetricFamily(PREFIX + "review_tokens", "Model tokens", labels=["type"])
        tokens.add_metric(["input"], r.input_tokens)
        tokens.add_metric(["output"], r.output_tokens)
        tokens.add_metric(["cached"], r.cached_tokens)
        yield tokens
        for name, doc, value in tail:
            yield from _gauge(name, doc, value)
        alerts = GaugeMetricFamily(
            PREFIX + "alert_firing", "1 when the alert fires", labels=["alert"]
        )
        for alert_id in ALERT_IDS:
            alerts.add_metric([alert_id], 1.0 if alert_id in self._firing else 0.0)
        yield alerts


def build_registry(selected: Sequence[AnyEntry], firing: Sequence[Alert]) -> CollectorRegistry:
    kinds: dict[str, int] = {}
    for entry in selected:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FiguresCollector(figures(selected), kinds, firing))
    return registry


def exposition(
    registry: CollectorRegistry, flavour: Literal["openmetrics", "prometheus"] = "openmetrics"
) -> str:
    if flavour == "openmetrics":
        return openmetrics_latest(registry).decode("utf-8")
    return prometheus_latest(registry).decode("utf-8")


def write_textfile(path: Path, entries: Sequence[AnyEntry], config: MetricsConfig) -> None:
    """Refresh the node_exporter textfile from the history's current window."""
    selected = select(entries, per_kind=config.alerts.window_runs)
    save_textfile(path, build_registry(selected, evaluate(selected, config.alerts)))


def save_textfile(path: Path, registry: CollectorRegistry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
