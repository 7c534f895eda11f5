"""What gatebot knows about Gemini models without asking: families, request parameters,
implicit-caching minimums and announced shutdowns.

The live answer is the API's models list (bot/review/providers/resolve.py): a tier names a
family (`flash-lite`, `flash`, `pro`) or a model id, and is resolved against what the API lists
at run start. This table only fills in what the list does not say (which thinking control a
model takes, when Google shuts it down, which models are already gone). A model missing from it
is still usable: its generation is read from its id (`gemini-<major>.<minor>-...`).

Checked on LINEUP_CHECKED against Google's Gemini API pages (SOURCES): the models page (current
lineup), the deprecations page (shutdown dates), the thinking page (`thinking_level` for
Gemini 3; `thinking_budget` for 2.5, refused from 3.5 on; both at once is a 400) and the
caching page (implicit caching from 4,096 prompt tokens on the 3.x models, 2,048 on 2.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

LINEUP_CHECKED = date(2026, 12, 4)
SOURCES = (
    "https://ai.google.dev/gemini-api/docs/models",
    "https://ai.google.dev/gemini-api/docs/deprecations",
    "https://ai.google.dev/gemini-api/docs/thinking",
    "https://ai.google.dev/gemini-api/docs/caching",
)

Family = Literal["flash-lite", "flash", "pro"]
FAMILIES: tuple[Family, ...] = ("flash-lite", "flash", "pro")
Stage = Literal["stable", "preview", "alias"]
THINKING_LEVELS = ("minimal", "low", "medium", "high")

# A text model id: gemini-<major>[.<minor>]-<family>[-preview[-MM-YYYY]] or Google's
# auto-updated alias gemini-<family>-latest. Anything else (tts, image, live, embedding…) is
# not a review model, whatever methods it lists.
_ID_RE = re.compile(
    r"^gemini-(?:(?P<major>\d+)(?:\.(?P<minor>\d+))?-(?P<family>flash-lite|flash|pro)"
    r"(?P<preview>-preview(?:-\d{2}-\d{4})?)?(?:-\d{3})?"
    r"|(?P<alias>flash-lite|flash|pro)-latest)$"
)


@dataclass(frozen=True)
class KnownModel:
    id: str
    family: Family
    stage: Stage
    # Thinking control: "level" (Gemini 3: thinking_level) or "budget" (2.5: thinking_budget).
    thinking: Literal["level", "budget"]
    levels: tuple[str, ...] = ("low", "medium", "high")
    budget_ok: bool = False  # thinking_budget still accepted (2.5; 3.0/3.1 for compatibility)
    cache_min_tokens: int = 4096  # implicit caching applies from this many prompt tokens
    shutdown: date | None = None  # announced (earliest) shutdown date
    replacement: str | None = None  # Google's recommended replacement (a family or an id)
    alias_of: str | None = None  # what an auto-updated alias pointed to on LINEUP_CHECKED


def _m(id_: str, family: Family, stage: Stage = "stable", **kw: object) -> KnownModel:
    return KnownModel(id_, family, stage, **kw)  # type: ignore[arg-type]


_ALL_LEVELS = THINKING_LEVELS
KNOWN: dict[str, KnownModel] = {
    m.id: m
    for m in (
        # -- current lineup (models page, 2026-12-04) --
        _m("gemini-3.8-flash", "flash", thinking="level"),
        _m("gemini-3.7-flash", "flash", thinking="level"),
        _m("gemini-3.6-flash", "flash", thinking="level", levels=_ALL_LEVELS),
        _m("gemini-3.5-flash", "flash", thinking="level", levels=_ALL_LEVELS),
        _m("gemini-3.5-flash-lite", "flash-lite", thinking="level", levels=_ALL_LEVELS),
        _m(
            "gemini-3.1-flash-lite",
            "flash-lite",
            thinking="level",
            levels=_ALL_LEVELS,
            budget_ok=True,
            shutdown=date(2027, 5, 7),
            replacement="flash-lite",
        ),
        _m("gemini-3.1-pro-preview", "pro", "preview", thinking="level", budget_ok=True),
        _m(
            "gemini-3-flash-preview",
            "flash",
            "preview",
            thinking="level",
            levels=_ALL_LEVELS,
            budget_ok=True,
        ),
        # Google's auto-updated aliases: they move to a new model without notice in the id.
        _m("gemini-flash-latest", "flash", "alias", thinking="level", alias_of="gemini-3.8-flash"),
        _m(
            "gemini-flash-lite-latest",
            "flash-lite",
            "alias",
            thinking="level",
            alias_of="gemini-3.5-flash-lite",
        ),
        _m(
            "gemini-pro-latest", "pro", "alias", thinking="level", alias_of="gemini-3.1-pro-preview"
        ),
        # -- 2.5: Flash-Lite "remains available until further notice"; Flash and Pro shut down --
        _m(
            "gemini-2.5-flash-lite",
            "flash-lite",
            thinking="budget",
            levels=(),
            budget_ok=True,
            cache_min_tokens=2048,
            replacement="flash-lite",
        ),
        _m(
            "gemini-2.5-flash",
            "flash",
            thinking="budget",
            levels=(),
            budget_ok=True,
            cache_min_tokens=2048,
            shutdown=date(2026, 12, 1),
            replacement="flash",
        ),
        _m(
            "gemini-2.5-pro",
            "pro",
            thinking="budget",
            levels=(),
            budget_ok=True,
            cache_min_tokens=2048,
            shutdown=date(2026, 12, 1),
            replacement="pro",
        ),
        _m(
            "gemini-3-pro-preview",
            "pro",
            "preview",
            thinking="level",
            budget_ok=True,
            shutdown=date(2026, 3, 9),
            replacement="pro",
        ),
        _m(
            "gemini-2.0-flash",
            "flash",
            thinking="budget",
            levels=(),
            budget_ok=True,
            shutdown=date(2026, 6, 1),
            replacement="flash",
        ),
        _m(
            "gemini-2.0-flash-lite",
            "flash-lite",
            thinking="budget",
            levels=(),
            budget_ok=True,
            shutdown=date(2026, 6, 1),
            replacement="flash-lite",
        ),
    )
}


@dataclass(frozen=True)
class ModelId:
    """What a model id says about itself."""

    id: str
    family: Family
    major: int  # 0 for an alias (its generation is whatever it points to)
    minor: int
    stage: Stage


def bare(model: str) -> str:
    """`models/gemini-x` (the API's resource name) → `gemini-x`."""
    return model.removeprefix("models/")


def parse_id(model: str) -> ModelId | None:
    """The family and generation of a Gemini text model id, or None when it is not one."""
    name = bare(model)
    m = _ID_RE.match(name)
    if not m:
        return None
    if m["alias"]:
        return ModelId(name, m["alias"], 0, 0, "alias")  # type: ignore[arg-type]
    stage: Stage = "preview" if m["preview"] else "stable"
    return ModelId(name, m["family"], int(m["major"]), int(m["minor"] or 0), stage)  # type: ignore[arg-type]


def known(model: str) -> KnownModel | None:
    return KNOWN.get(bare(model))


def thinking_style(model: str) -> Literal["level", "budget"]:
    """How `model` takes its thinking setting: Gemini 3 and later by level, older by budget."""
    k = known(model)
    if k is not None:
        return k.thinking
    parsed = parse_id(model)
    if parsed is not None and parsed.major and parsed.major < 3:
        return "budget"
    return "level"  # Gemini 3+, aliases and unknown newer ids


def supported_levels(model: str) -> tuple[str, ...]:
    """Thinking levels `model` accepts. Unknown Gemini 3+ models: the levels every 3.x takes."""
    k = known(model)
    if k is not None:
        return k.levels
    return ("low", "high") if thinking_style(model) == "level" else ()


def takes_budget(model: str) -> bool:
    k = known(model)
    if k is not None:
        return k.budget_ok
    return thinking_style(model) == "budget"


def takes_temperature(model: str) -> bool:
    """Google advises leaving temperature at its default on Gemini 3 (the reasoning is tuned
    for it): only older models get our deterministic temperature 0."""
    return thinking_style(model) == "budget"


def cache_min_tokens(model: str) -> int:
    k = known(model)
    return k.cache_min_tokens if k is not None else 4096


def retired(model: str, today: date) -> KnownModel | None:
    """The table entry of `model` when its announced shutdown date has passed."""
    k = known(model)
    if k is not None and k.shutdown is not None and k.shutdown <= today:
        return k
    return None


def deprecated(model: str, today: date) -> KnownModel | None:
    """The table entry of `model` when a shutdown date is announced (passed or not)."""
    k = known(model)
    if k is not None and k.shutdown is not None:
        return k
    return None


def current_ids(today: date) -> list[str]:
    """The built-in lineup of text models not shut down by `today` (used when the API's list
    cannot be had): what the run tries, in the order resolution prefers."""
    return [m for m in KNOWN if retired(m, today) is None]
