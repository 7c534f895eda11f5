"""The `review:` section (key names are a public contract: docs/configuration.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, WithJsonSchema, field_validator

from bot.config.base import Section
from bot.config.routing import GeminiConfig, PriceConfig, RiskConfig

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

# GitHub reads an action's metadata from `action.yml` or `action.yaml`: both are the action.
DEFAULT_PROTECTED = [
    ".github/workflows/**",
    "action.yml",
    "action.yaml",
    "action/**",
    ".github/gatebot.yml",
]


class ProtectedConfig(Section):
    """Paths whose changes a human must review: the model alone never approves them."""

    paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROTECTED),
        description="gitignore-style globs a human must review"
        " (.github/gatebot.yml and .gitattributes always are)",
    )
    conclusion: Literal["neutral", "failure"] = Field(
        "failure",
        description="the conclusion when a protected path changed and nothing else blocks, until"
        " a maintainer approves the head SHA (neutral passes a required check: fail-open)",
    )


class ModelsConfig(Section):
    """Tier → a model family (`flash-lite`, `flash`, `pro`: the newest listed model of it) or
    a model id. Resolved against the API's models list at run start (docs/cost.md)."""

    lite: str = Field("flash-lite", min_length=1, description="small, low-risk changes")
    standard: str = Field("flash", min_length=1, description="ordinary changes")
    deep: str = Field("pro", min_length=1, description="risky changes")


class LocalChecksConfig(Section):
    """Switches for the deterministic local reviewer (always runs, also beside the model)."""

    secrets: bool = Field(True, description="committed secrets and private keys (detect-secrets)")
    conflict_markers: bool = Field(True, description="leftover merge-conflict markers")
    syntax: bool = Field(True, description="Python files that do not parse")
    debugger: bool = Field(True, description="leftover breakpoint() / pdb in Python files")
    large_files: bool = Field(True, description="very large added files")


DEFAULT_RULES_FILE = ".github/gatebot-rules.md"
_MAX_INSTRUCTION_CHARS = 4000


class RulesSource(Section):
    """A file of the repository (read at the BASE of the change) whose text is a review rule."""

    file: str = Field(description="repository path, e.g. .github/gatebot-rules.md or AGENTS.md")
    section: str | None = Field(
        None,
        max_length=200,
        description="only this markdown section (a heading's text, e.g. 'Code review'); "
        "None: the whole file",
    )

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.split("/")
        if not value or value.startswith("/") or "\\" in value or ".." in parts or "" in parts:
            raise ValueError(f"{value!r}: a path relative to the repository root, without '..'")
        return value


class ReviewConfig(Section):
    blocking_severity: Severity = Field(
        "high", description="a finding at or above this severity fails the gate"
    )
    ignore: list[str] = Field(default_factory=list, description="gitignore-style globs: skipped")
    protected: ProtectedConfig = Field(default_factory=ProtectedConfig)
    max_findings_per_file: int = Field(
        50,
        ge=1,
        le=10_000,
        description="model findings kept per file (the most severe); the rest are counted",
    )
    max_findings: int = Field(
        500,
        ge=1,
        le=100_000,
        description="model findings kept per run (the most severe); the rest are counted",
    )
    unreviewed: Literal["failure", "neutral"] = Field(
        "failure",
        description="the conclusion when files were not reviewed because no model was available"
        " (provider outage, no key in Actions). neutral passes a required check: fail-open."
        " Files the PR's own content or a cap kept from review always fail",
    )
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    fallback: list[str] = Field(
        default_factory=list,
        description="models or families tried, in order, after a tier's own chain when a model"
        " is unavailable (404 / retired)",
    )
    models_list_ttl_s: int = Field(
        21600, ge=0, description="how long the API's models list is reused from the cache (s)"
    )
    max_usd: float | None = Field(
        None, gt=0, description="per-run spend cap in USD: past it files are not reviewed"
    )
    max_calls: int | None = Field(
        None, ge=1, description="per-run cap on model calls: past it files are not reviewed"
    )
    budget_tokens: int = Field(60000, ge=2000, description="input tokens per model call")
    # model side (bot/config/routing.py): routing, batching, prices, the Gemini client
    risk: RiskConfig = Field(default_factory=RiskConfig)
    merge_tiers: bool = Field(
        True,
        description="a lower tier's call rides in a higher tier's call when that is not dearer",
    )
    merge_max_tokens: int = Field(
        16000, ge=0, description="the largest lower-tier call that may move (tokens; 0: never)"
    )
    merge_max_usd: float = Field(
        0.0,
        ge=0,
        description="how much more (USD, net of the call saved) moving a lower tier's call into"
        " a dearer model's call may cost; 0: only moves that cost nothing more",
    )
    max_files_per_call: int = Field(50, ge=1, le=500, description="files (or parts) per call")
    prices: dict[str, PriceConfig] = Field(
        default_factory=dict, description="USD per 1M tokens by model, over the built-in table"
    )
    instructions: str = Field("", description="extra review guidance added to the prompt")
    rules: list[RulesSource] = Field(
        default_factory=lambda: [RulesSource(file=DEFAULT_RULES_FILE)],
        max_length=10,
        description="repository files (or one markdown section of each) whose text the model "
        "follows as review rules; read at the base of the change, never the PR's head; a "
        "missing .github/gatebot-rules.md is fine",
    )
    path_instructions: dict[str, str] = Field(
        default_factory=dict,
        max_length=50,
        description="gitignore-style glob → instructions for the files it matches, e.g. "
        "{'src/payments/**': 'amounts are integer cents'}",
    )
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
    walkthrough: bool = Field(
        True,
        description="a one-line summary of each changed file in the check run (asked in the "
        "same model calls: a few output tokens per file, no extra call)",
    )
    comments: Annotated[
        Literal["off", "findings", "suggestions"],
        # YAML 1.1 reads a bare `off` as false: the schema accepts what the loader does.
        WithJsonSchema({"enum": ["off", "findings", "suggestions", False]}),
    ] = Field(
        "suggestions",
        description="inline PR review comments: suggestions (findings that carry a fix, as "
        "committable suggestions), findings (every finding on a diff line, fixes included), "
        "off (check-run annotations only); never on fork PRs, whose token is read-only",
    )

    # The rules read from the repository at the base (bot/review/rules.py): resolved per run,
    # never written in the file. (title, text) sections of the prompt's stable prefix.
    _repo_rules: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    @property
    def repo_rules(self) -> tuple[tuple[str, str], ...]:
        return self._repo_rules

    def with_repo_rules(self, sections: tuple[tuple[str, str], ...]) -> ReviewConfig:
        copy = self.model_copy()
        copy._repo_rules = sections
        return copy

    @field_validator("path_instructions")
    @classmethod
    def _globs(cls, value: dict[str, str]) -> dict[str, str]:
        import pathspec  # imported here: a config without instructions (a deploy's) skips it

        for glob, text in value.items():
            if not glob.strip() or len(glob) > 500:
                raise ValueError(f"{glob[:60]!r}: a glob like src/payments/**")
            try:
                pathspec.GitIgnoreSpec.from_lines([glob])
            except ValueError as exc:
                raise ValueError(f"{glob!r}: not a valid glob ({exc})") from None
            if len(text) > _MAX_INSTRUCTION_CHARS:
                raise ValueError(f"{glob!r}: instructions over {_MAX_INSTRUCTION_CHARS} characters")
        return value

    @field_validator("comments", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as a boolean: take it as the user meant it.
        return "off" if value is False else value
