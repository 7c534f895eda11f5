"""What one line of the run history holds: a review run or a deploy/rollback/audit run.

`DeployRecord` is what the deploy and audit code hands to `record_deploy`; the history adds the
timestamp and the Actions run id. Lines written by a newer gatebot may carry fields this one does
not know: reading ignores them instead of dropping the whole run.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from bot.review.models import Metrics, VerdictValue

HISTORY_VERSION = 1

DeployKind = Literal["deploy", "rollback", "audit"]

# The history is restored state (docs/security.md, §6.3): a number no real run produces is a
# bad record, not a figure that overflows or poisons an average.
MAX_FIGURE = 1e15


class DeployRecord(BaseModel):
    """One deploy, rollback or audit run, as its code reports it.

    `ok` is the outcome; `error` is the message when the run ended in an error; `exit_code` (when
    given) tells an infrastructure error (3: SSH down, transfer cut) from a failed deploy or audit
    (1). A deploy that ran the audit sets `audit_duration_s`, and then counts as an audit result.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: DeployKind
    target: str
    ref: str | None = None
    sha: str | None = None
    release: str | None = None
    ok: bool
    duration_s: float = Field(0.0, ge=0, le=MAX_FIGURE)
    bytes_sent: int = Field(0, ge=0, le=MAX_FIGURE)
    files_sent: int = Field(0, ge=0, le=MAX_FIGURE)
    audit_duration_s: float | None = Field(None, ge=0, le=MAX_FIGURE)
    gtw_rtt_p50_ms: float | None = Field(None, ge=0, le=MAX_FIGURE)
    gtw_rtt_max_ms: float | None = Field(None, ge=0, le=MAX_FIGURE)
    gtw_budget_ms: float | None = Field(
        None,
        gt=0,
        le=MAX_FIGURE,
        description="the audit's round-trip budget at the time (audit.gtw.budget_ms)",
    )
    error: str | None = None
    exit_code: int | None = Field(
        None,
        ge=0,
        le=255,
        description="the process exit code the run ended with (3: infrastructure)",
    )


class _Stamp(BaseModel):
    v: int = HISTORY_VERSION
    ts: AwareDatetime
    run_id: str | None = None


class ReviewEntry(_Stamp):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    kind: Literal["review"] = "review"
    verdict: VerdictValue
    provider: str
    degraded: bool = False
    degraded_reason: str | None = None
    head_sha: str | None = None
    uncovered: int = Field(0, ge=0, le=MAX_FIGURE)
    metrics: Metrics

    @field_validator("metrics")
    @classmethod
    def _real_figures(cls, metrics: Metrics) -> Metrics:
        for name, value in metrics.model_dump().items():
            if isinstance(value, (int, float)) and not (
                math.isfinite(value) and 0 <= value <= MAX_FIGURE
            ):
                raise ValueError(f"metrics.{name} out of range")
        return metrics


class DeployEntry(DeployRecord, _Stamp):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


Entry = Annotated[ReviewEntry | DeployEntry, Field(discriminator="kind")]
ENTRY_ADAPTER: TypeAdapter[ReviewEntry | DeployEntry] = TypeAdapter(Entry)


def is_error(entry: ReviewEntry | DeployEntry) -> bool:
    """The run ended in an error. A review with a verdict did not (degraded is separate)."""
    return isinstance(entry, DeployEntry) and (entry.error is not None or bool(entry.exit_code))


def is_infrastructure_error(entry: ReviewEntry | DeployEntry) -> bool:
    """An error no fallback absorbed: exit code 3, or any error when no exit code was recorded."""
    if not isinstance(entry, DeployEntry):
        return False
    if entry.exit_code is not None:
        return entry.exit_code == 3
    return entry.error is not None
