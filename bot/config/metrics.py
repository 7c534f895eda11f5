"""The `metrics:` section: history bounds, alert thresholds and optional outputs.

Defaults come from the success criteria of the runbook gatebot replaces: cost saved >= 80%,
cache hit rate 40-60% at first, error rate 0. docs/monitoring.md explains each one.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from bot.config.base import Section


class AlertsConfig(Section):
    window_runs: int = Field(
        20, ge=1, description="alerts and rolling figures look at the newest N runs of each kind"
    )
    min_runs: int = Field(
        3, ge=1, description="ratio alerts (cost, hit rate) wait for this many review runs"
    )
    min_cost_reduction: float = Field(
        0.8, ge=0, le=1, description="fires when the window's cost reduction is below this"
    )
    hit_rate_min: float = Field(
        0.4, ge=0, le=1, description="fires when the window's cache hit rate is below this"
    )
    hit_rate_max: float = Field(
        0.99,
        ge=0,
        le=1,
        description="fires when the window's cache hit rate is above this (1.0 disables)",
    )
    max_errors: int = Field(
        0, ge=0, description="runs in the window that ended in an infrastructure error, tolerated"
    )
    max_degraded_runs: int = Field(
        0, ge=0, description="reviews done by the fallback reviewer, tolerated"
    )
    gtw_rtt_budget_ms: float | None = Field(
        None,
        gt=0,
        description="GTW round trip budget (p50); default: the budget each audit recorded",
    )

    @model_validator(mode="after")
    def _band(self) -> AlertsConfig:
        if self.hit_rate_min > self.hit_rate_max:
            raise ValueError("hit_rate_min must not be above hit_rate_max")
        return self


class MetricsConfig(Section):
    history_max_records: int = Field(
        1000,
        ge=10,
        description="runs kept in history.jsonl in the cache directory; older ones are dropped",
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    textfile: str | None = Field(
        None, description="node_exporter textfile (*.prom) rewritten after every recorded run"
    )
    run_log: str | None = Field(
        None, description="file that gets the runbook's one-line summary after every review"
    )

    @field_validator("textfile")
    @classmethod
    def _prom_suffix(cls, value: str | None) -> str | None:
        # node_exporter's textfile collector only reads *.prom; anything else is silently unused.
        if value is not None and not value.endswith(".prom"):
            raise ValueError("must end in .prom (node_exporter reads only *.prom files)")
        return value
