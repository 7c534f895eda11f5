"""The `review:` section (key names in shared/DESIGN.md §4 are binding)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.base import Section
from bot.config.routing import GeminiConfig, PriceConfig, RiskConfig

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

DEFAULT_PROTECTED = [".github/workflows/**", "action.yml", "action/**", ".github/gatebot.yml"]


class ProtectedConfig(Section):
    """Paths whose changes a human must review: the model alone never approves them."""

    paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROTECTED),
        description="gitignore-style globs a human must review (.github/gatebot.yml always is)",
    )
    conclusion: Literal["neutral", "failure"] = Field(
        "neutral", description="the verdict when a protected path changed and nothing blocks"
    )


class ModelsConfig(Section):
    """Tier → Gemini model name (routing picks the tier)."""

    lite: str = Field("gemini-2.5-flash-lite", description="model for small, low-risk changes")
    standard: str = Field("gemini-2.5-flash", description="model for ordinary changes")
    deep: str = Field("gemini-2.5-pro", description="model for risky changes")


class LocalChecksConfig(Section):
    """Switches for the deterministic local reviewer (always runs, also beside the model)."""

    secrets: bool = Field(True, description="committed secrets and private keys (detect-secrets)")
    conflict_markers: bool = Field(True, description="leftover merge-conflict markers")
    syntax: bool = Field(True, description="Python files that do not parse")
    debugger: bool = Field(True, description="leftover breakpoint() / pdb in Python files")
    large_files: bool = Field(True, description="very large added files")


class ReviewConfig(Section):
    blocking_severity: Severity = Field(
        "high", description="a finding at or above this severity fails the gate"
    )
    ignore: list[str] = Field(default_factory=list, description="gitignore-style globs: skipped")
    protected: ProtectedConfig = Field(default_factory=ProtectedConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    budget_tokens: int = Field(60000, ge=2000, description="input tokens per model call")
    # model side (bot/config/routing.py): routing, batching, prices, the Gemini client
    risk: RiskConfig = Field(default_factory=RiskConfig)
    merge_tiers: bool = Field(
        True, description="a lower tier's call whose files fit in a higher tier's call rides along"
    )
    merge_max_tokens: int = Field(
        16000,
        ge=0,
        description="a lower tier's call up to this size rides in a higher tier's spare room"
        " (one call fewer, at most this many tokens at the higher price; 0: never)",
    )
    merge_max_usd: float = Field(
        0.005,
        ge=0,
        description="a lower tier's call also rides in any higher tier's call with room when its"
        " input costs at most this much more there (USD; small pushes become one call; 0: never)",
    )
    max_files_per_call: int = Field(50, ge=1, le=500, description="files (or parts) per call")
    prices: dict[str, PriceConfig] = Field(
        default_factory=dict, description="USD per 1M tokens by model, over the built-in table"
    )
    instructions: str = Field("", description="extra review guidance added to the prompt")
    gemini: GeminiConfig = Field(default_factory=GeminiConfig)
    context_lines: int = Field(3, ge=0, le=50, description="lines of context around each hunk")
    cache_max_mb: int = Field(256, ge=1, description="size bound of the review cache (MB)")
    max_file_bytes: int = Field(
        2_000_000, ge=1000, description="files over this are skipped unread (no diff/checks/model)"
    )
    large_file_lines: int = Field(5000, ge=1, description="an added file above this is flagged")
    large_file_bytes: int = Field(
        1_000_000, ge=1, description="an added file above this is flagged"
    )
    local: LocalChecksConfig = Field(default_factory=LocalChecksConfig)
