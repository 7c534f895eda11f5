"""Routing: give each file that needs a model a tier (lite / standard / deep) and a model name.

Risk wins over size: a change that touches auth, crypto, deploy, money, concurrency, SQL or
code execution (by path or by the content of its added/removed lines) goes deep, however small.
Small low-risk changes (documentation-like text, tests, a handful of lines) go lite. The rest is
standard. Patterns come from `review.risk`; tier → model from the run's ModelPlan (the
families or ids of `review.models` resolved to live models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pathspec

from bot.config.review import ReviewConfig
from bot.config.routing import RiskConfig
from bot.inert import unicode_safe
from bot.review.types import FileChange, ModelPlan

TIERS: tuple[str, ...] = ("lite", "standard", "deep")


class _Globs:
    """gitignore-style globs (pathspec's semantics) matched as one combined regex.

    PathSpec.match_file tries pattern after pattern; on a 1,000-file PR that is most of the
    routing time. Without negations, "any pattern matches" is one alternation of their regexes.
    """

    def __init__(self, globs: tuple[str, ...]) -> None:
        self._spec = pathspec.PathSpec.from_lines("gitignore", globs)
        regexes = [getattr(p, "regex", None) for p in self._spec.patterns]
        simple = all(p.include for p in self._spec.patterns) and all(
            isinstance(r, re.Pattern) for r in regexes
        )
        self._combined = (
            re.compile("|".join(f"(?:{r.pattern})" for r in regexes if r is not None))
            if simple and regexes
            else None
        )

    def match(self, path: str) -> bool:
        path = unicode_safe(path)  # a non-UTF-8 name: matched as its escaped text
        if self._combined is not None:
            return self._combined.match(path) is not None
        return self._spec.match_file(path)


@dataclass(frozen=True)
class _Rules:
    risky_paths: _Globs
    low_risk_paths: _Globs
    content: tuple[re.Pattern[str], ...]


def _rules(risk: RiskConfig) -> _Rules:
    return _compile(
        tuple([*risk.paths, *risk.extra_paths]),
        tuple(risk.low_risk_paths),
        tuple([*risk.content, *risk.extra_content]),
    )


@lru_cache(maxsize=16)
def _compile(risky: tuple[str, ...], low: tuple[str, ...], content: tuple[str, ...]) -> _Rules:
    # Keyed by the pattern tuples, so the files of one run share the compiled rules. Each regex
    # is compiled on its own: user patterns may carry their own inline flags like (?i).
    return _Rules(
        risky_paths=_Globs(risky),
        low_risk_paths=_Globs(low),
        content=tuple(re.compile(p) for p in content),
    )


def _changed_text(change: FileChange, new_text: str | None) -> tuple[list[str], int]:
    """The added and removed lines (what the change does) and their count."""
    lines = [ln.content for h in change.hunks for ln in h.lines if ln.origin in "+-"]
    if not lines and new_text is not None and change.change == "added":
        lines = new_text.splitlines()
    return lines, len(lines)


def risk_reason(change: FileChange, new_text: str | None, config: ReviewConfig) -> str | None:
    """Why a change is risky (for the summary), or None."""
    rules = _rules(config.risk)
    paths = [change.path] + ([change.old_path] if change.old_path else [])
    for p in paths:
        if rules.risky_paths.match(p):
            return f"risky path {p}"
    if rules.content:
        lines, _ = _changed_text(change, new_text)
        for line in lines:
            for pattern in rules.content:
                m = pattern.search(line)
                if m:
                    return f"risky content {m.group(0).strip()[:40]!r}"
    return None


def tier_for(change: FileChange, new_text: str | None, config: ReviewConfig) -> str:
    risk = config.risk
    if risk_reason(change, new_text, config) is not None:
        return "deep"
    _, changed = _changed_text(change, new_text)
    if risk.deep_min_changed_lines and changed >= risk.deep_min_changed_lines:
        return "deep"
    if changed <= risk.lite_max_changed_lines:
        return "lite"
    low_risk = _rules(risk).low_risk_paths.match(change.path)
    if low_risk and changed <= risk.low_risk_max_changed_lines:
        return "lite"
    return "standard"


def model_for(tier: str, config: ReviewConfig, plan: ModelPlan | None = None) -> str:
    """The model a tier's files go to: the plan's live model for it when there is a plan
    (bot/review/providers/resolve.py), else the configured family or id as written. A tier
    with no live model in the plan goes to the first model of its fallback order."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    if plan is not None:
        chosen = plan.primary(tier) or next(iter(plan.fallback_order(tier)), None)
        if chosen is not None:
            return chosen
    model: str = getattr(config.models, tier)
    return model


def tiers_of(config: ReviewConfig) -> dict[str, str]:
    """tier → the configured family or id (`review.models`)."""
    return {t: getattr(config.models, t) for t in TIERS}


def route(
    change: FileChange, new_text: str | None, config: ReviewConfig, plan: ModelPlan | None = None
) -> tuple[str, str]:
    """(tier, model) for one file that needs a model review."""
    tier = tier_for(change, new_text, config)
    return tier, model_for(tier, config, plan)
