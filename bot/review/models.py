"""The review gate's public contract: `verdict.json` and `metrics.json` (docs/review.md).

Everything downstream (the check run, the Action outputs, monitoring) reads these models.
Additive changes only; bump SCHEMA_VERSION on anything else.

Schema history (docs/review.md, "verdict.json"):
- 1: the first contract;
- 2: fail closed. A file no reviewer covered carries `not_reviewed` (cause and reason) and makes
  the verdict `fail` unless the base config opts into fail-open for its cause; the verdict
  carries the check-run `conclusion` and the `reasons` behind it; metrics gained the call cap.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from bot.config.review import Severity
from bot.inert import unicode_safe
from bot.redact import redact


def _safe(text: str) -> str:
    return redact(unicode_safe(text))


# Text from the repository, the model or a provider's error: always encodable as UTF-8 when
# written (a non-UTF-8 file name or a lone surrogate in an answer would crash the JSON writer)
# and without credentials in URLs (bot/inert.py, bot/redact.py). Kept as-is in memory.
Text = Annotated[str, PlainSerializer(_safe, return_type=str)]

SCHEMA_VERSION = 2

FileStatus = Literal["reviewed", "cached", "skipped"]
VerdictValue = Literal["pass", "fail", "neutral"]
# What GitHub receives as the check run's conclusion (bot/github/checks.py sends it as is).
Conclusion = Literal["success", "failure", "neutral"]
CONCLUSION_OF: dict[str, Conclusion] = {"pass": "success", "fail": "failure", "neutral": "neutral"}
# Why a changed file was not reviewed (docs/review.md, "Not reviewed"):
# - content: the file itself (too large, binary, unreadable, a type the gate cannot read, a
#   model safety block): the PR's author can provoke it, so it never passes on its own;
# - provider: the model provider failed after retries (outage, quota, a refused request);
# - budget: a call or spend cap stopped the run before the file was answered;
# - no_model: no model ran at all (no key inside GitHub Actions, e.g. a fork PR).
NotReviewedCause = Literal["content", "provider", "budget", "no_model"]
NOT_REVIEWED_CAUSES: tuple[NotReviewedCause, ...] = ("content", "provider", "budget", "no_model")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    path: Text
    line: int | None = Field(None, ge=1, description="first line in the new file; None: whole file")
    end_line: int | None = Field(None, ge=1)
    severity: Severity
    category: Text
    message: Text
    source: Literal["local", "model"] = "local"
    in_diff: bool = Field(True, description="the line is a changed line of the diff (annotatable)")
    suggestion: Text | None = Field(
        None,
        description="replacement text for lines line..end_line of the new file (a committable "
        "suggestion on the PR); None when the finding carries no fix",
    )


class NotReviewed(_Model):
    cause: NotReviewedCause
    reason: Text


class FileResult(_Model):
    path: Text
    old_path: Text | None = None
    status: FileStatus
    reason: Text | None = None
    tier: str | None = None
    model: Text | None = None
    needs_human: bool = False
    covered: bool = Field(True, description="False when no reviewer covered it (not_reviewed)")
    not_reviewed: NotReviewed | None = Field(
        None, description="why no reviewer covered this file; None when one did"
    )
    summary: Text | None = Field(
        None, description="the model's one line on what the change does (the walkthrough)"
    )
    findings: list[Finding] = Field(default_factory=list)
    findings_omitted: int = Field(
        0, ge=0, description="model findings past review.max_findings_per_file, not listed"
    )

    @model_validator(mode="after")
    def _covered_iff_reviewed(self) -> FileResult:
        # One fact, two spellings: `covered` (schema 1) is kept for readers of the old field.
        # A file marked uncovered without a cause counts as `content`: it never passes alone.
        if self.not_reviewed is None and not self.covered:
            reason = self.reason or "no reviewer covered this file"
            self.not_reviewed = NotReviewed(cause="content", reason=reason)
        self.covered = self.not_reviewed is None
        return self


class ModelFallbackRecord(_Model):
    """Files moved off a model that was unavailable during the run (bot/review/types.py)."""

    tier: str
    from_model: Text
    to_model: Text | None = Field(None, description="None: no model was left to review them")
    reason: Text
    files: int = 0


class Metrics(_Model):
    api_calls: int = 0
    batches: int = 0
    files_total: int = 0
    # files_reviewed + files_cached + files_skipped + files_not_reviewed == files_total
    files_reviewed: int = Field(0, description="files a reviewer covered (model, or local only)")
    files_cached: int = Field(0, description="files whose verdict came from the review cache")
    files_skipped: int = Field(0, description="files skipped by policy (ignored, deleted, …)")
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
    unpriced_models: list[Text] = Field(default_factory=list)
    models: dict[str, Text] = Field(default_factory=dict, description="tier -> model used")
    model_fallbacks: list[ModelFallbackRecord] = Field(default_factory=list)
    files_over_budget: int = Field(
        0, description="files not reviewed because review.max_calls / max_usd was reached"
    )
    files_not_reviewed: int = Field(
        0, description="files no reviewer covered (files[].not_reviewed), in no other count"
    )
    api_calls_cap: int = Field(0, ge=0, description="the run's automatic call cap (0: no model)")
    findings_omitted: int = Field(0, ge=0, description="model findings past the caps")


class Approval(_Model):
    """A maintainer's approval of one head commit (bot/github/approval.py records it)."""

    sha: str = Field(pattern=r"^[0-9a-f]{40}$", description="the approved head commit")
    approver: str = Field(description="the GitHub login GitHub reported as the actor")
    approved_at: str = Field(description="ISO 8601, UTC")
    via: str = Field(description="the authorised trigger: workflow_dispatch | issue_comment")
    run_url: str | None = Field(None, description="the workflow run that recorded it")
    pr: int | None = None


class Crash(_Model):
    """gatebot stopped on an internal error: nothing was decided, the check failed closed."""

    kind: str = Field(description="the exception's type, e.g. UnicodeEncodeError")
    message: Text
    log_url: str | None = None


class Verdict(_Model):
    schema_version: int = SCHEMA_VERSION
    verdict: VerdictValue
    base_sha: str
    head_sha: str
    conclusion: Conclusion = Field(
        "failure",
        description="the check run's conclusion: success | failure | neutral (from the verdict:"
        " pass → success, fail → failure, neutral → neutral; success also after an approval)",
    )
    reasons: list[Text] = Field(default_factory=list, description="why the verdict is not pass")
    provider: str = Field(description="gemini | local | gemini+local")
    degraded: bool = False
    degraded_reason: Text | None = None
    blocking_severity: Severity = "high"
    files: list[FileResult] = Field(default_factory=list)
    uncovered: list[Text] = Field(default_factory=list, description="paths not reviewed")
    needs_human: list[Text] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    approval: Approval | None = Field(
        None, description="a maintainer's approval of this head: the conclusion is success"
    )
    crash: Crash | None = Field(None, description="set when gatebot crashed (verdict fail)")

    @model_validator(mode="before")
    @classmethod
    def _conclusion_from_verdict(cls, data: Any) -> Any:
        if isinstance(data, dict) and "conclusion" not in data and "verdict" in data:
            data = {**data, "conclusion": CONCLUSION_OF.get(data["verdict"], "failure")}
        return data
