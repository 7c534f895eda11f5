"""Tiers → live models: the API's models list, kept beside the review cache for a while.

A tier names a family (`flash-lite`, `flash`, `pro`) or a model id. At run start the provider
asks `models.list` once (or reuses a list fetched less than `review.models_list_ttl_s` ago)
and `plan` maps each tier to the models that exist and support `generateContent`:

- a family: its listed models, stable before preview, newest version first; Google's
  auto-updated alias (`gemini-<family>-latest`) last;
- an id: that model first, then its family's others; an id the list does not have (retired)
  is dropped with a note naming the model used instead;
- models whose announced shutdown date has passed (bot/review/lineup.py) never,
  even if a stale list still names them.

When a call then finds a model gone (404), its files move along the fallback order: the rest
of the tier's chain, then the next tier (lite → standard → deep, standard → deep,
deep → standard), then `review.fallback`. A model found gone is remembered in the list file,
so the next runs route around it at once.

The list file is restored from actions/cache: it is untrusted input. Anything odd about it
(size, shape, names, a time in the future, another endpoint) drops it and the run asks again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.review import restored
from bot.review.lineup import (
    FAMILIES,
    LINEUP_CHECKED,
    bare,
    current_ids,
    known,
    parse_id,
    retired,
)
from bot.review.types import ModelPlan

log = logging.getLogger(__name__)

LIST_FILE = "models-list.json"
MAX_LIST_BYTES = 1_000_000
MAX_MODELS = 2000
CHAIN_PER_TIER = 3  # a family's candidates kept per tier (bounded fallback work)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
# The tiers a tier's files move through when its models are gone, own tier first.
FALLBACK_ORDER: dict[str, tuple[str, ...]] = {
    "lite": ("lite", "standard", "deep"),
    "standard": ("standard", "deep"),
    "deep": ("deep", "standard"),
}


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: int = Field(1, ge=1, le=1)
    endpoint: str = Field(max_length=64)
    fetched_at: float
    models: list[str] = Field(max_length=MAX_MODELS)
    gone: dict[str, float] = Field(default_factory=dict, max_length=MAX_MODELS)

    @field_validator("models")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for n in names:
            if not _NAME_RE.match(n):
                raise ValueError("a model name that is not a model name")
        return names

    @field_validator("gone")
    @classmethod
    def _gone_names(cls, gone: dict[str, float]) -> dict[str, float]:
        for n, t in gone.items():
            if not _NAME_RE.match(n) or not math.isfinite(t):
                raise ValueError("a gone model entry that is not one")
        return gone


def endpoint_id(base_url: str | None) -> str:
    """Which API a list belongs to (a digest: the URL may carry credentials)."""
    return hashlib.sha256((base_url or "default").encode("utf-8")).hexdigest()[:32]


class ModelsListFile:
    """The models list beside the review cache: read validated, written atomically."""

    def __init__(self, cache_dir: Path, endpoint: str, ttl_s: int) -> None:
        self.path = cache_dir / LIST_FILE
        self.endpoint = endpoint
        self.ttl_s = ttl_s
        self.warnings: list[str] = []

    def _read(self) -> _Stored | None:
        # Restored state (bot/review/restored.py): no link followed, a plain file only, bounded.
        try:
            raw = restored.read_entry(self.path.parent, self.path.name, MAX_LIST_BYTES)
        except restored.StateError as exc:
            self._drop(str(exc))
            return None
        except OSError as exc:
            self._drop(type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            stored = _Stored.model_validate(json.loads(raw.decode("utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, ValidationError) as exc:
            # ValueError covers JSONDecodeError and pydantic's ValidationError
            self._drop(type(exc).__name__)
            return None
        if not math.isfinite(stored.fetched_at) or stored.fetched_at > time.time() + 300:
            self._drop("its time is in the future")
            return None
        if stored.endpoint != self.endpoint:
            return None  # another API's list: not ours to use, nothing wrong with it
        return stored

    def _drop(self, why: str) -> None:
        msg = f"ignoring the cached models list ({why}); the API is asked again"
        log.warning(msg)
        self.warnings.append(msg)
        return None

    def fresh(self) -> tuple[list[str], set[str], float] | None:
        """(models, gone, age in s) of a list younger than the TTL, else None."""
        stored = self._read()
        if stored is None:
            return None
        age = max(0.0, time.time() - stored.fetched_at)
        if age > self.ttl_s:
            return None
        return stored.models, set(stored.gone), age

    def gone(self) -> set[str]:
        stored = self._read()
        return set(stored.gone) if stored is not None else set()

    def save(self, models: Sequence[str], gone: Iterable[str] = ()) -> None:
        now = time.time()
        data = _Stored(
            endpoint=self.endpoint,
            fetched_at=now,
            models=[m for m in models if _NAME_RE.match(m)][:MAX_MODELS],
            gone={g: now for g in gone if _NAME_RE.match(g)},
        )
        self._write(data)

    def mark_gone(self, model: str) -> None:
        stored = self._read()
        if stored is None or not _NAME_RE.match(model):
            return
        stored.gone[model] = time.time()
        self._write(stored)

    def _write(self, data: _Stored) -> None:
        # A fresh temporary file renamed over the entry: a link planted under either name is
        # replaced, never written through.
        try:
            restored.write_entry(self.path.parent, self.path.name, data.model_dump_json().encode())
        except (OSError, restored.StateError) as exc:
            log.warning("models list not saved: %s", exc)


def _rank(model: str) -> tuple[int, int, int, str]:
    p = parse_id(model)
    assert p is not None
    stage = {"stable": 0, "preview": 1, "alias": 2}[p.stage]
    return (stage, -p.major, -p.minor, model)


def family_candidates(
    family: str, listed: Iterable[str], today: date, exclude: set[str]
) -> list[str]:
    """The listed models of `family`, best first (stable, newest; aliases last)."""
    out = []
    for m in listed:
        p = parse_id(m)
        if p is None or p.family != family or m in exclude or retired(m, today) is not None:
            continue
        out.append(m)
    return sorted(set(out), key=_rank)[:CHAIN_PER_TIER]


def _chain(
    tier: str, spec: str, listed: list[str], today: date, gone: set[str], notes: list[str]
) -> tuple[str, ...]:
    spec = bare(spec.strip())
    key = f"review.models.{tier}"
    if spec in FAMILIES:
        chain = family_candidates(spec, listed, today, gone)
        if not chain:
            notes.append(f"{key}: no {spec} model is listed by the API")
        return tuple(chain)
    parsed = parse_id(spec)
    family = parsed.family if parsed else None
    others = family_candidates(family, listed, today, gone | {spec}) if family else []
    gone_now = retired(spec, today)
    if spec in listed and spec not in gone and gone_now is None:
        return (spec, *others)
    why = (
        f"shut down on {gone_now.shutdown}"
        if gone_now is not None and gone_now.shutdown
        else "not listed by the API"
    )
    instead = others[0] if others else "the next tier"
    notes.append(f"{key} = {spec} is {why}; using {instead} (set {key}: {family or 'a family'})")
    return tuple(others)


def plan(
    tiers: dict[str, str],
    fallback: Sequence[str],
    listed: Sequence[str] | None,
    *,
    today: date,
    gone: set[str] | None = None,
    source: str = "the API's models list",
) -> ModelPlan:
    """Map each tier's family or id to live models (pure: the listing is given)."""
    notes: list[str] = []
    gone = set(gone or ())
    if listed is None:
        listed = current_ids(today)
        source = f"gatebot's built-in lineup of {LINEUP_CHECKED} ({source})"
    names = [bare(m) for m in listed]
    chains = {t: _chain(t, spec, names, today, gone, notes) for t, spec in tiers.items()}
    extra: list[str] = []
    for spec in fallback:
        s = bare(spec.strip())
        if s in FAMILIES:
            extra += family_candidates(s, names, today, gone)
        elif s in names and retired(s, today) is None and s not in gone:
            extra.append(s)
        else:
            notes.append(f"review.fallback: {s} is not listed by the API; skipped")
    order = {t: tuple(x for x in FALLBACK_ORDER.get(t, (t,)) if x in tiers) for t in tiers}
    return ModelPlan(chains, order, tuple(dict.fromkeys(extra)), source, tuple(notes))


def generate_models(models: Iterable[object]) -> list[str]:
    """Ids of the listed models (google-genai `Model` objects) that can `generateContent`."""
    out: list[str] = []
    for m in models:
        name = getattr(m, "name", None)
        actions = getattr(m, "supported_actions", None) or []
        if isinstance(name, str) and "generateContent" in actions:
            n = bare(name)
            if _NAME_RE.match(n):
                out.append(n)
        if len(out) >= MAX_MODELS:
            break
    return out


def replacement(model: str, listed: Sequence[str], today: date) -> str | None:
    """The listed model gatebot would use instead of `model`: the best live model of its
    announced replacement (a family or an id; bot/review/lineup.py), else of its own family."""
    name = bare(model)
    k = known(name)
    parsed = parse_id(name)
    spec = (k.replacement if k is not None else None) or (parsed.family if parsed else None)
    if spec is None:
        return None
    names = [bare(m) for m in listed]
    if spec in FAMILIES:
        found = family_candidates(spec, names, today, {name})
        return found[0] if found else None
    return spec if spec in names and spec != name and retired(spec, today) is None else None


def deprecation_note(model: str, today: date, listed: Sequence[str] | None = None) -> str | None:
    """Why a configured id is a bad idea today (for `gatebot doctor`), or None. With the
    API's list, it names the model gatebot would pick instead."""
    k = known(model)
    if k is None or k.shutdown is None:
        return None
    verb = "was shut down" if k.shutdown <= today else "will be shut down"
    use = f"use {k.replacement or 'a family'}"
    pick = replacement(model, listed, today) if listed is not None else None
    if pick is not None:
        use += f": gatebot would pick {pick}"
    return f"{bare(model)} {verb} on {k.shutdown.isoformat()} ({use})"
