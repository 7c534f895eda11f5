"""The review gate's public contract: `verdict.json` and `metrics.json` (shared/DESIGN.md §4).

Everything downstream (the check run, the Action outputs, monitoring) reads these models.
Additive changes only; bump SCHEMA_VERSION on anything else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.config.review import Severity

SCHEMA_VERSION = 1

FileStatus = Literal["reviewed", "cached", "skipped"]
VerdictValue = Literal["pass", "fail", "neutral"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    path: str
    line: int | None = Field(None, ge=1, description="first line in the new file; None: whole file")
    end_line: int | None = Field(None, ge=1)
    severity: Severity
    category: str
    message: str
    source: Literal["local", "model"] = "local"
    in_diff: bool = Field(True, description="the line is a changed line of the diff (annotatable)")


class FileResult(_Model):
    path: str
    old_path: str | None = None
    status: FileStatus
    reason: str | None = None
    tier: str | None = None
    model: str | None = None
    needs_human: bool = False
    covered: bool = Field(True, description="False when infrastructure left it unreviewed")
    findings: list[Finding] = Field(default_factory=list)


class ModelFallbackRecord(_Model):
    """Files moved off a model that was unavailable during the run (bot/review/types.py)."""

    tier: str
    from_model: str
    to_model: str | None = Field(None, description="None: no model was left to review them")
    reason: str
    files: int = 0


class Metrics(_Model):
    api_calls: int = 0
    batches: int = 0
    files_total: int = 0
    files_reviewed: int = 0
    files_cached: int = 0
    files_skipped: int = 0
    cache_hit_rate: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    baseline_api_calls: int = 0
    baseline_cost_usd: float = 0.0
    cost_reduction_rate: float = Field(
        0.0, description="1 - cost/baseline; negative when the gate cost more than naive"
    )
    files_per_call: float = 0.0
    duration_s: float = 0.0
    thoughts_tokens: int = Field(0, description="thinking tokens (part of output_tokens)")
    savings_usd: float = Field(
        0.0, description="baseline_cost_usd - cost_usd; negative: the gate cost more"
    )
    cost_known: bool = Field(
        True, description="False when a model used has no known price (cost_usd leaves it out)"
    )
    unpriced_models: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict, description="tier -> model used")
    model_fallbacks: list[ModelFallbackRecord] = Field(default_factory=list)
    files_over_budget: int = Field(
        0, description="files not reviewed because review.max_calls / max_usd was reached"
    )


class Verdict(_Model):
    schema_version: int = SCHEMA_VERSION
    verdict: VerdictValue
    base_sha: str
    head_sha: str
    provider: str = Field(description="gemini | local | gemini+local")
    degraded: bool = False
    degraded_reason: str | None = None
    blocking_severity: Severity = "high"
    files: list[FileResult] = Field(default_factory=list)
    uncovered: list[str] = Field(default_factory=list)
    needs_human: list[str] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
