"""Model-side settings of the `review:` section: risk routing, prices, the Gemini client.

Kept beside `review.py` (which imports these) so the routing and provider knobs have one home.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config.base import Section

# Paths whose changes go to the deep tier whatever their size (gitignore-style globs).
DEFAULT_RISK_PATHS = [
    "**/auth/**",
    "**/*auth*",
    "**/*login*",
    "**/*session*",
    "**/*password*",
    "**/*secret*",
    "**/*token*",
    "**/*crypt*",
    "**/*cipher*",
    "**/*sign*",
    "**/*permission*",
    "**/deploy/**",
    "**/*deploy*",
    "**/*release*",
    "**/Dockerfile",
    "**/*.sql",
    "**/migrations/**",
    "**/*payment*",
    "**/*billing*",
    "**/*wallet*",
    "**/*ledger*",
    "**/*money*",
    "**/*order*",
    "**/*trade*",
    "**/*execution*",
    "**/*lock*",
    "**/*thread*",
    "**/*concurren*",
]

# Regexes searched in the added and removed lines of a change; a hit routes the file deep.
DEFAULT_RISK_CONTENT = [
    # running code or commands
    r"\b(subprocess|os\.system|os\.popen|pty\.spawn|shell\s*=\s*True)\b",
    r"(?<![\w.])(eval|exec)\s*\(",
    r"\b(pickle|marshal|shelve)\.loads?\b|\byaml\.load\s*\((?![^)]*SafeLoader)",
    # authentication, secrets, crypto, TLS
    r"(?i)(?<![a-z])(password|passwd|api[_-]?key|secret|private[_-]?key|access[_-]?token|jwt|oauth)",
    r"(?i)\b(hashlib|hmac|bcrypt|cryptography|Cipher|AES|RSA|ssl\.|verify\s*=\s*False)\b",
    # raw SQL
    r"(?i)\b(select\s.+\sfrom|insert\s+into|update\s+\w+\s+set|delete\s+from|drop\s+table)\b",
    r"\.(execute|executemany|raw)\s*\(",
    # concurrency
    r"\b(threading|multiprocessing|asyncio\.(Lock|Semaphore|gather)|RLock|Semaphore)\b",
    r"\b(Lock|Condition|Barrier)\s*\(",
    # money
    r"(?i)\b(payment|refund|invoice|balance|currency|decimal\.Decimal|fee|price|quantity)\b",
    # deploy and privileges
    r"\b(sudo|chmod|chown|rm\s+-rf|setuid|kubectl|terraform)\b",
]

# Low-risk files (documentation-like text and tests) may go to the lite tier when small enough.
DEFAULT_LOW_RISK_PATHS = [
    "*.md",
    "*.rst",
    "*.txt",
    "*.adoc",
    "docs/**",
    "doc/**",
    "tests/**",
    "test/**",
    "**/test_*.py",
    "**/*_test.py",
    "**/*_test.go",
    "**/*.test.*",
    "**/*.spec.*",
    "CHANGELOG*",
    "LICENSE*",
]


class RiskConfig(Section):
    """Routing: which files deserve the deep tier, which may use the lite one."""

    paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RISK_PATHS),
        description="gitignore-style globs routed to the deep tier (replaces the defaults)",
    )
    extra_paths: list[str] = Field(
        default_factory=list, description="more deep-tier globs, added to `paths`"
    )
    content: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RISK_CONTENT),
        description="regexes over added/removed lines routed to the deep tier (replaces defaults)",
    )
    extra_content: list[str] = Field(
        default_factory=list, description="more deep-tier regexes, added to `content`"
    )
    low_risk_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOW_RISK_PATHS),
        description="docs-like and test globs eligible for the lite tier",
    )
    lite_max_changed_lines: int = Field(
        12, ge=0, description="any non-risky change this small (added+removed lines) goes lite"
    )
    low_risk_max_changed_lines: int = Field(
        400, ge=0, description="a low-risk path goes lite up to this many changed lines"
    )
    deep_min_changed_lines: int = Field(
        0, ge=0, description="changes at least this large go deep (0: size never forces deep)"
    )

    @model_validator(mode="after")
    def _thresholds_agree(self) -> RiskConfig:
        # Contradictory thresholds: a change cannot be small enough for lite and large enough
        # for deep at once. Named as a configuration error rather than resolved silently.
        # (A low-risk path's allowance may exceed it: size forcing deep wins there, as
        # documented; any change at all being "small" is another matter.)
        deep, lite = self.deep_min_changed_lines, self.lite_max_changed_lines
        if deep and lite >= deep:
            raise ValueError(
                f"review.risk.lite_max_changed_lines ({lite}) must be below "
                f"review.risk.deep_min_changed_lines ({deep}): a change cannot be both small "
                "enough for lite and large enough for deep"
            )
        return self

    @field_validator("content", "extra_content")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"item {i}: not a valid regular expression: {exc}") from None
            except (OverflowError, RecursionError):
                # re raises these, not re.error, for a repeat count beyond its limit or groups
                # nested past the recursion limit; pydantic only converts ValueError.
                raise ValueError(
                    f"item {i}: not a valid regular expression: too large or nested too deeply"
                ) from None
        return patterns


class PriceConfig(Section):
    """USD per 1M tokens. `cached_input` is what implicitly cached prompt tokens cost; output
    includes thinking tokens. The `*_long` prices apply to a call whose prompt is over
    `long_context_tokens` (Gemini's long-context tier); unset, the base price applies."""

    input: float = Field(ge=0)
    output: float = Field(ge=0, description="output tokens, thinking included")
    cached_input: float = Field(ge=0)
    input_long: float | None = Field(None, ge=0, description="input over long_context_tokens")
    output_long: float | None = Field(None, ge=0, description="output when the prompt is long")
    cached_input_long: float | None = Field(None, ge=0)
    long_context_tokens: int = Field(200_000, ge=1, description="where the long tier begins")


class GeminiConfig(Section):
    """How the Gemini client behaves: concurrency, timeouts, retries, thinking."""

    concurrency: int = Field(4, ge=1, le=32, description="model calls in flight at once")
    timeout_s: float = Field(120.0, gt=0, description="per HTTP request")
    attempts: int = Field(5, ge=1, le=20, description="tries per call, first one included")
    initial_delay_s: float = Field(1.0, ge=0, description="first backoff delay")
    max_delay_s: float = Field(60.0, ge=0, description="longest single backoff delay")
    jitter_s: float = Field(1.0, ge=0, description="random extra delay up to this")
    max_retry_delay_s: float = Field(
        120.0, ge=0, description="a 429 asking to wait longer than this is not waited for"
    )
    item_retries: int = Field(
        2, ge=0, le=5, description="re-asks for a file missing or malformed in an answer"
    )

    @model_validator(mode="after")
    def _delays_agree(self) -> GeminiConfig:
        if self.initial_delay_s > self.max_delay_s:
            raise ValueError(
                f"review.gemini.initial_delay_s ({self.initial_delay_s:g}) is over "
                f"review.gemini.max_delay_s ({self.max_delay_s:g}): the first backoff cannot be "
                "longer than the longest"
            )
        return self

    thinking_level: Literal["minimal", "low", "medium", "high"] | None = Field(
        "low",
        description="thinking depth on Gemini 3 and later (thinking_level); a level a model"
        " does not take becomes the nearest one it does (None: the model's default)",
    )
    thinking_budget: int | None = Field(
        None,
        ge=-1,
        description="thinking tokens per call, only for models that take a budget (2.5; None:"
        " model default; 0: off where allowed; -1: dynamic); never sent to Gemini 3.5+",
    )
