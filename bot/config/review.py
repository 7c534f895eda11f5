"""The `review:` section (key names in shared/DESIGN.md §4 are binding)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.base import Section

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

DEFAULT_PROTECTED = [".github/workflows/**", "action.yml", "action/**", ".github/gatebot.yml"]


class ProtectedConfig(Section):
    paths: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTECTED))
    conclusion: Literal["neutral", "failure"] = "neutral"


class ModelsConfig(Section):
    lite: str = "gemini-2.5-flash-lite"
    standard: str = "gemini-2.5-flash"
    deep: str = "gemini-2.5-pro"


class ReviewConfig(Section):
    blocking_severity: Severity = "high"
    ignore: list[str] = Field(default_factory=list, description="gitignore-style globs: skipped")
    protected: ProtectedConfig = Field(default_factory=ProtectedConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    budget_tokens: int = Field(60000, ge=2000, description="input tokens per model call")
    context_lines: int = Field(3, ge=0, le=50, description="lines of context around each hunk")
