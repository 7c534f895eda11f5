"""The audit report contract (docs/audit.md) and its markdown rendering for job summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config.audit import LAYER_IDS

SCHEMA_VERSION = 1


Status = Literal["pass", "fail", "skip"]


class LayerResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: Status
    duration_ms: float = Field(ge=0)
    detail: str
    # Figures a person or the metrics history may want (latency, RTTs, versions); never secrets.
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in LAYER_IDS:
            raise ValueError(f"unknown layer id {v!r}; expected one of {', '.join(LAYER_IDS)}")
        return v


class AuditReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    target: str
    ref: str | None = None
    sha: str | None = None
    release: str | None = None
    started_at: datetime
    duration_s: float = Field(ge=0)
    passed: bool
    layers: list[LayerResult]

    @field_validator("layers")
    @classmethod
    def _nine_in_order(cls, v: list[LayerResult]) -> list[LayerResult]:
        ids = tuple(layer.id for layer in v)
        if ids != LAYER_IDS:
            raise ValueError(f"layers must be exactly {', '.join(LAYER_IDS)} in order, got {ids}")
        return v

    def layer(self, layer_id: str) -> LayerResult:
        for item in self.layers:
            if item.id == layer_id:
                return item
        raise KeyError(layer_id)

    @property
    def failed(self) -> list[LayerResult]:
        return [item for item in self.layers if item.status == "fail"]

    def summary_line(self) -> str:
        if self.passed:
            return f"audit of {self.target} passed ({self.duration_s:.2f}s)"
        names = ", ".join(f"{item.id}: {item.detail}" for item in self.failed)
        return f"audit of {self.target} failed: {names}"


_ICON = {"pass": "✅", "fail": "❌", "skip": "⏭️"}


def _cell(text: str) -> str:
    # A table cell must stay on one line and must not close the cell early.
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


def render_markdown(report: AuditReport, *, title: str | None = None) -> str:
    verdict = "passed" if report.passed else "FAILED"
    heading = title or f"Audit of `{report.target}` {verdict}"
    lines = [f"### {heading}", ""]
    facts = [
        ("release", report.release),
        ("sha", report.sha[:12] if report.sha else None),
        ("ref", report.ref),
        ("started", report.started_at.isoformat(timespec="seconds")),
        ("duration", f"{report.duration_s:.2f}s"),
    ]
    lines.append(" · ".join(f"{k}: `{v}`" for k, v in facts if v))
    lines += ["", "| # | layer | status | time | detail |", "|---|---|---|---|---|"]
    for n, item in enumerate(report.layers, 1):
        lines.append(
            f"| {n} | {item.id} | {_ICON[item.status]} {item.status} | "
            f"{item.duration_ms:.0f} ms | {_cell(item.detail)} |"
        )
    lines.append("")
    return "\n".join(lines)
