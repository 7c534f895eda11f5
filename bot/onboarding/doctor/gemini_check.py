"""Doctor checks for Gemini: a key is present, the API answers, every tier has a live model.

The probes are `models.list` and `countTokens` (both free of charge) through the same client
the review uses (`GeminiProvider`), with one attempt and the doctor's short timeout instead of
the review's patient retries. Each tier of `review.models` is then resolved against the list
as a review would (bot/review/providers/resolve.py): a tier with no live model fails, a
configured id that is not listed or has an announced shutdown date is reported with the model
the review uses instead and the fix (name the family instead, e.g. `standard: flash`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import httpx2
from google.genai import errors as genai_errors

from bot.config import GatebotConfig
from bot.config.env import GEMINI_BASE_URL, GEMINI_KEYS
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, failed, passed, skipped, warned
from bot.review.cost import today_utc
from bot.review.providers import GeminiProvider
from bot.review.providers.resolve import deprecation_note
from bot.review.providers.resolve import plan as resolve_plan
from bot.review.route import tiers_of

KEY_ENVS = GEMINI_KEYS
_AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED")
_KEY_FIX = "create a key at https://aistudio.google.com/apikey and export GEMINI_API_KEY"
_PROBE_TEXT = "gatebot doctor"


def _api_key(ctx: DoctorContext) -> tuple[str, str] | None:
    for name in KEY_ENVS:
        if ctx.env.get(name):
            return name, ctx.env[name]
    return None


def _provider(ctx: DoctorContext, config: GatebotConfig, key: str) -> GeminiProvider:
    review = config.review
    # One try, short timeout: the doctor reports a slow or failing API, it does not wait it out.
    quick = review.gemini.model_copy(update={"attempts": 1, "timeout_s": ctx.timeout_s})
    return GeminiProvider(
        key,
        review.model_copy(update={"gemini": quick}),
        base_url=ctx.env.get(GEMINI_BASE_URL) or None,
    )


def _endpoint(ctx: DoctorContext) -> str:
    return ctx.env.get(GEMINI_BASE_URL) or "the Gemini API"


def _is_auth(exc: genai_errors.APIError) -> bool:
    if exc.code in (401, 403):
        return True
    return exc.code == 400 and any(r in json.dumps(exc.details) for r in _AUTH_REASONS)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:200]


def _api_result(ctx: DoctorContext, exc: BaseException | None, ms: float) -> CheckResult:
    title = "Gemini API"
    where = _endpoint(ctx)
    if exc is None:
        return passed("gemini.api", title, f"{where} answered countTokens in {ms:.0f} ms")
    if isinstance(exc, genai_errors.APIError):
        if _is_auth(exc):
            return failed("gemini.api", title, f"{where} rejected the API key", _KEY_FIX)
        if exc.code == 429:
            return warned(
                "gemini.api",
                title,
                f"{where} answered 429 (quota or rate limit): {_short(exc)}",
                "wait for the quota to refill, or raise it in the Google Cloud console",
            )
        return failed(
            "gemini.api",
            title,
            f"{where} answered HTTP {exc.code}: {_short(exc)}",
            "check https://status.cloud.google.com, or GOOGLE_GEMINI_BASE_URL if you use a proxy",
        )
    return failed(
        "gemini.api",
        title,
        f"{where} unreachable within {ctx.timeout_s:g}s: {_short(exc)}",
        "check the network/proxy from this machine (GOOGLE_GEMINI_BASE_URL overrides the URL)",
    )


def _timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        call()
    except (genai_errors.APIError, httpx2.TransportError, OSError, TimeoutError) as exc:
        return exc, (time.monotonic() - start) * 1000
    return None, (time.monotonic() - start) * 1000


def _models_result(config: GatebotConfig, listed: list[str], ms: float) -> CheckResult:
    review = config.review
    today = today_utc()
    tiers = tiers_of(review)
    plan = resolve_plan(tiers, list(review.fallback), listed, today=today)
    missing = [f"review.models.{t} = {spec}" for t, spec in tiers.items() if not plan.primary(t)]
    notes = list(plan.notes)
    for t, spec in tiers.items():
        note = deprecation_note(spec, today, listed)
        if note is not None and plan.primary(t) == spec:
            notes.append(f"review.models.{t}: {note}")
    used = ", ".join(f"{t} → {plan.primary(t)}" for t in tiers if plan.primary(t))
    fix = "name a family instead of an id (lite: flash-lite, standard: flash, deep: pro)"
    if missing:
        return failed(
            "gemini.models",
            "Gemini models",
            f"no live model for {', '.join(missing)}" + (f" ({'; '.join(notes)})" if notes else ""),
            fix,
            ms,
        )
    if notes:
        return warned(
            "gemini.models", "Gemini models", f"{'; '.join(notes)}; using {used}", fix, ms
        )
    return passed("gemini.models", "Gemini models", f"live: {used}", ms)


def check_gemini(ctx: DoctorContext, config: GatebotConfig) -> list[CheckResult]:
    found = _api_key(ctx)
    if found is None:
        return [
            failed(
                "gemini.key",
                "Gemini API key",
                "neither GEMINI_API_KEY nor GOOGLE_API_KEY is set: the gate would fall back to "
                "the local reviewer only",
                _KEY_FIX + " (in Actions: the repository secret GEMINI_API_KEY)",
            ),
            skipped("gemini.api", "Gemini API", "no API key"),
            skipped("gemini.models", "Gemini models", "no API key"),
        ]
    name, key = found
    results = [passed("gemini.key", "Gemini API key", f"{name} is set (value not shown)")]
    provider = _provider(ctx, config, key)
    listed: list[str] = []
    exc, list_ms = _timed(lambda: listed.extend(provider.list_models()))
    if exc is None:
        probe = resolve_plan(tiers_of(config.review), [], listed, today=today_utc())
        model = probe.primary("standard") or next(iter(listed), None)
        if model is not None:
            exc, ms = _timed(lambda: provider.count_tokens(model, _PROBE_TEXT))
            list_ms += ms
    api = replace(_api_result(ctx, exc, list_ms), duration_ms=list_ms)
    results.append(api)
    if api.status != "pass":
        results.append(skipped("gemini.models", "Gemini models", "the API did not answer"))
        return results
    results.append(_models_result(config, listed, list_ms))
    return results
