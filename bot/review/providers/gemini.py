"""Gemini through google-genai: structured answers, bounded concurrency, retries, usage.

Retries are layered on what the SDK does:
- 5xx, 408, timeouts and connection errors: google-genai's own `HttpRetryOptions`
  (exponential backoff with jitter, bounded attempts) plus a per-request timeout;
- 429: the SDK's retry ignores the server's `google.rpc.RetryInfo` delay (checked in
  google-genai 3.6 `_api_client.retry_args`), so 429 is left out of its status codes and a
  tenacity loop (the SDK's own retry library) waits what the server asks, within a bound;
- an answer that is unparseable, or leaves a file's block number out of `reviewed`, or has a
  malformed finding for a file: that file is asked again on its own (a whole unparseable
  answer is first halved).
A model the API says is gone (404, or a 400 naming the model as not found / not supported)
is not an outage: its files move to the next model of the run's ModelPlan (same tier, then
the next tier; bot/review/providers/resolve.py), recorded in `BatchOutcome.fallbacks`.
Every call first takes a slot from the run's CallBudget (bot/review/budget.py).
When the provider stays down, what is left comes back in `BatchOutcome.failed`; only a rejected
API key raises (ProviderError). The key is never logged.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import tenacity
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from bot.config.env import GEMINI_BASE_URL, GEMINI_KEYS, first_set
from bot.config.review import ReviewConfig
from bot.errors import ProviderError
from bot.redact import redact
from bot.review.budget import BUDGET_REASON, CallBudget
from bot.review.cost import cost_usd, price_for, today_utc
from bot.review.models import Finding, NotReviewedCause
from bot.review.prompt import batch_text, system_instruction
from bot.review.providers.answer import (
    CallResult,
    blocked_reason,
    parse_answer,
    reported_usage,
)
from bot.review.providers.params import generation_config
from bot.review.providers.resolve import (
    ModelsListFile,
    endpoint_id,
    generate_models,
    plan,
)
from bot.review.providers.transport import (
    DEFAULT_BASE_URL,
    AnswerTooLarge,
    CallCapReached,
    GuardedTransport,
    OriginRefused,
    WireBudget,
    call_cap,
)
from bot.review.tokens import (
    CalibrationTracker,
    estimate_output_tokens,
    estimate_tokens,
    estimated_thoughts,
)
from bot.review.types import (
    Batch,
    BatchOutcome,
    ModelFallback,
    ModelPlan,
    ReviewItem,
    Usage,
)

__all__ = ["GeminiProvider", "gemini_from_env", "parse_answer"]

log = logging.getLogger(__name__)


def _transport_errors() -> tuple[type[BaseException], ...]:
    # google-genai 3.x talks httpx2 (httpx before): both raise TransportError subclasses for
    # timeouts and connection failures. Collect whichever is installed.
    found: list[type[BaseException]] = [OSError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()
_SDK_RETRY_CODES = [408, 500, 502, 503, 504]
_AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED")
_MAX_MESSAGE = 2000


class _Unavailable(Exception):
    """The provider did not answer after every retry (outage, quota, timeouts)."""


class _Rejected(Exception):
    """The provider refused this request (request too large, bad argument): not an outage."""


class _ModelGone(Exception):
    """The API does not serve this model (retired, unknown, not for generateContent)."""


class _OverBudget(Exception):
    """The run's call or dollar cap refused this call (bot/review/budget.py), or the run's
    automatic call cap did (bot/review/providers/transport.py)."""


class _AnswerRefused(Exception):
    """The answer was over the size cap: not read (bot/review/providers/transport.py)."""


_GONE_RE = re.compile(
    r"(?i)\b(not found|not supported for generatecontent|no longer (available|supported)"
    r"|has been (retired|shut down|discontinued)|is not available)\b"
)


def _is_model_gone(exc: genai_errors.APIError) -> bool:
    if exc.code == 404:
        return True
    text = f"{exc.status or ''} {exc.message or ''}"
    return (
        exc.code in (400, 403)
        and "api key" not in text.lower()
        and "model" in text.lower()
        and bool(_GONE_RE.search(text))
    )


def _retry_delay(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (RetryInfo.retryDelay or Retry-After), if any."""
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else None
    for d in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(d.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    response = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    if header and re.fullmatch(r"\d+(\.\d+)?", header.strip()):
        return float(header)
    return None


def _is_auth_error(exc: genai_errors.APIError) -> bool:
    if exc.code in (401, 403):
        return not _is_model_gone(exc)
    return exc.code == 400 and any(r in json.dumps(exc.details) for r in _AUTH_REASONS)


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        api_key: str,
        config: ReviewConfig,
        *,
        base_url: str | None = None,
        calibration: CalibrationTracker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: CallBudget | None = None,
        today: date | None = None,
    ) -> None:
        # No I/O here: the client (and its connection pool) is made on first use.
        self._api_key = api_key
        self._config = config
        self._settings = config.gemini
        self._base_url = base_url
        self._sleep = sleep
        self.calibration = calibration or CalibrationTracker()
        self.budget = budget or CallBudget(config.max_calls, config.max_usd)
        self.wire = WireBudget()  # the automatic cap, set per run in review()
        self.transport = GuardedTransport(
            base_url or os.environ.get(GEMINI_BASE_URL) or DEFAULT_BASE_URL, self.wire
        )
        self.today = today or today_utc()
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()
        self._down: str | None = None
        self._down_lock = threading.Lock()
        self._system = system_instruction(config)
        self.plan: ModelPlan | None = None
        # (tiers, fallback) while the plan rests on the restored models list (a hint only).
        self._replan: tuple[dict[str, str], list[str]] | None = None
        self._replan_lock = threading.Lock()
        self._gone: set[str] = set()
        self._list_file: ModelsListFile | None = None

    def __repr__(self) -> str:  # never show the key, nor credentials in the base URL
        return f"GeminiProvider(base_url={redact(self._base_url or '')!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _get_client(self) -> genai.Client:
        with self._client_lock:
            if self._client is None:
                s = self._settings
                retry = gtypes.HttpRetryOptions(
                    attempts=s.attempts,
                    initial_delay=s.initial_delay_s,
                    max_delay=s.max_delay_s,
                    exp_base=2.0,
                    jitter=s.jitter_s,
                    http_status_codes=_SDK_RETRY_CODES,
                )
                options = gtypes.HttpOptions(
                    base_url=self._base_url,  # None: the SDK reads GOOGLE_GEMINI_BASE_URL itself
                    timeout=max(int(s.timeout_s * 1000), 1),
                    retry_options=retry,
                    # Every request, redirects included, through the guard: the key only to
                    # the configured origin, answers bounded, requests counted against the
                    # run's call cap (bot/review/providers/transport.py).
                    client_args={"transport": self.transport, "trust_env": False},
                )
                self._client = genai.Client(
                    api_key=self._api_key, vertexai=False, http_options=options
                )
            return self._client

    def _mark_down(self, reason: str) -> None:
        with self._down_lock:
            if self._down is None:
                log.warning("Gemini unavailable, remaining files go uncovered: %s", reason)
                self._down = reason

    @property
    def down_reason(self) -> str | None:
        with self._down_lock:
            return self._down

    def _mark_gone(self, model: str) -> bool:
        """Remember `model` as gone (here and in the list file); False if it already was."""
        with self._down_lock:
            if model in self._gone:
                return False
            self._gone.add(model)
        log.warning("model %s is unavailable; its files move to the fallback", model)
        if self._list_file is not None:
            self._list_file.mark_gone(model)
        return True

    def _wait_429(self, state: tenacity.RetryCallState) -> float:
        s = self._settings
        exc = state.outcome.exception() if state.outcome else None
        server = _retry_delay(exc) if exc is not None else None
        if server is not None:
            return min(server, s.max_retry_delay_s) + random.uniform(0, s.jitter_s)
        expo = tenacity.wait_exponential_jitter(
            initial=s.initial_delay_s, max=s.max_delay_s, exp_base=2.0, jitter=s.jitter_s
        )
        return float(expo(state))

    def _retryable_429(self, exc: BaseException) -> bool:
        if not (isinstance(exc, genai_errors.APIError) and exc.code == 429):
            return False
        delay = _retry_delay(exc)
        # A quota that resets in an hour is not worth waiting for inside a CI job.
        return delay is None or delay <= self._settings.max_retry_delay_s

    # -- models ---------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Ids of the models the API lists for `generateContent` (models.list, all pages)."""
        pager = self._get_client().models.list(config={"page_size": 1000})
        return generate_models(pager)

    def plan_models(self, tiers: dict[str, str], fallback: list[str], cache_dir: Path) -> ModelPlan:
        """Resolve the tiers once per run: a fresh cached list, else the API's, else (the API
        did not answer) a stale cached list or the built-in lineup. Never raises for the list.

        The list file is restored state: it may speed a run up, never take a model away. When
        what it says (its list, the models it remembers as gone) leaves a tier with no model,
        the API is asked afresh and the remembered gone models are forgotten, so a planted file
        cannot turn every file into "provider outage", which `review.unreviewed: neutral` would
        pass (docs/security.md, §6.13)."""
        lf = ModelsListFile(cache_dir, endpoint_id(self._base_url), self._config.models_list_ttl_s)
        self._list_file = lf
        cached = lf.fresh()
        restored_gone = cached[1] if cached is not None else lf.gone()
        listed, gone, source = self._listing(lf, cached, restored_gone)
        resolved = plan(tiers, fallback, listed, today=self.today, gone=gone, source=source)
        self._replan = None
        if cached is not None or restored_gone:
            self._replan = (tiers, fallback)  # what to ask the API again if the hint misleads
            if any(not chain for chain in resolved.chains.values()):
                return self._relist("the cached models list leaves a tier without a model")
        with self._down_lock:
            self._gone |= gone
        self.plan = dataclasses.replace(resolved, notes=(*lf.warnings, *resolved.notes))
        return self.plan

    def _relist(self, why: str) -> ModelPlan:
        """Plan again from the API's own list, forgetting what the list file remembered (once
        per run: the restored hint has misled this run)."""
        assert self._replan is not None and self._list_file is not None
        tiers, fallback = self._replan
        self._replan = None
        log.warning("%s; asking the API for its models list", why)
        listed, _, source = self._listing(self._list_file, None, set())
        with self._down_lock:
            self._gone = set()
        resolved = plan(tiers, fallback, listed, today=self.today, gone=set(), source=source)
        notes = (*self._list_file.warnings, f"{why}: asked the API again", *resolved.notes)
        self.plan = dataclasses.replace(resolved, notes=notes)
        return self.plan

    def _listing(
        self,
        lf: ModelsListFile,
        cached: tuple[list[str], set[str], float] | None,
        gone: set[str],
    ) -> tuple[list[str] | None, set[str], str]:
        """(listed models or None, gone models, where the list came from)."""
        if cached is not None:
            listed, gone, age = cached
            return listed, gone, f"the API's models list (cached {age / 60:.0f} min ago)"
        try:
            listed = self.list_models()
        except genai_errors.APIError as exc:
            if _is_auth_error(exc):
                self._mark_down(f"API key rejected (HTTP {exc.code})")
                raise ProviderError(
                    f"Gemini rejected the API key (HTTP {exc.code})",
                    hint="check GEMINI_API_KEY / GOOGLE_API_KEY",
                ) from None
            return None, gone, f"models.list answered HTTP {exc.code}"
        except _TRANSPORT_ERRORS as exc:
            return None, gone, f"models.list failed ({type(exc).__name__})"
        gone &= set(listed)
        lf.save(listed, gone)
        return listed, gone, "the API's models list"

    # -- calls ----------------------------------------------------------------------------

    def _generate(self, model: str, text: str) -> gtypes.GenerateContentResponse:
        s = self._settings
        config = generation_config(model, s, self._system)
        client = self._get_client()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(s.attempts),
            wait=self._wait_429,
            retry=tenacity.retry_if_exception(self._retryable_429),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(
                client.models.generate_content, model=model, contents=text, config=config
            )
        except genai_errors.APIError as exc:
            if _is_model_gone(exc):
                raise _ModelGone(f"HTTP {exc.code} {exc.status or ''}".strip()) from None
            if _is_auth_error(exc):
                # Every other call would be refused too: stop the in-flight batches' next calls.
                self._mark_down(f"API key rejected (HTTP {exc.code})")
                raise ProviderError(
                    f"Gemini rejected the API key (HTTP {exc.code} {exc.status or ''})".strip(),
                    hint="check GEMINI_API_KEY / GOOGLE_API_KEY",
                ) from None
            if exc.code == 429:
                raise _Unavailable(
                    f"rate limited or out of quota (HTTP 429 {exc.status})"
                ) from None
            if exc.code in _SDK_RETRY_CODES or exc.code >= 500:
                raise _Unavailable(f"HTTP {exc.code} {exc.status} after retries") from None
            raise _Rejected(
                f"request refused: HTTP {exc.code} {exc.message or ''}".strip()
            ) from None
        except CallCapReached as exc:
            raise _OverBudget(f"{BUDGET_REASON}: {exc}") from None
        except AnswerTooLarge as exc:
            raise _AnswerRefused(str(exc)) from None
        except OriginRefused as exc:
            raise _Unavailable(str(exc)) from None
        except _TRANSPORT_ERRORS as exc:
            kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
            raise _Unavailable(f"{kind} after retries ({type(exc).__name__})") from None

    def _usage(
        self,
        meta: gtypes.GenerateContentResponseUsageMetadata | None,
        model: str,
        text: str,
        files: int,
    ) -> tuple[Usage, bool]:
        """(usage, reported): the answer's own figures, or gatebot's estimate of the call when
        they cannot be true (bot/review/providers/answer.py `reported_usage`)."""
        usage = reported_usage(meta)
        if usage is not None:
            return usage, True
        log.warning("the model's usage metadata is implausible; its call is billed as estimated")
        est_out = estimate_output_tokens(files) + estimated_thoughts(model, self._settings)
        est_in = self.calibration.value.estimate(self._system + text)
        return Usage(calls=1, input_tokens=est_in, output_tokens=est_out), False

    def estimate_usd(self, model: str, text: str, files: int) -> float | None:
        """What one call is expected to cost (for the dollar cap), or None when unpriced."""
        p = price_for(model, self._config.prices, self.today)
        if p is None:
            return None
        est_in = self.calibration.value.estimate(self._system + text)
        est_out = estimate_output_tokens(files) + estimated_thoughts(model, self._settings)
        return (est_in * p.input + est_out * p.output) / 1e6

    def _call(self, model: str, items: Sequence[ReviewItem]) -> CallResult:
        text = batch_text(items)
        est = self.estimate_usd(model, text, len(items))
        refused = self.budget.take(est)
        if refused is not None:
            raise _OverBudget(refused)
        try:
            response = self._generate(model, text)
        except (_ModelGone, _Rejected, _Unavailable, _OverBudget, ProviderError):
            self.budget.release(est)  # an error answer is not billed
            raise
        except _AnswerRefused as exc:
            # Unusable like an unparseable answer: the call's files are halved and re-asked
            # (within the call cap), and the content, not the provider, is blamed.
            self.budget.settle(est, None)
            result = CallResult(usage=Usage(calls=1), unparseable=True)
            result.bad = {it.cache_key: f"answer refused: {exc}" for it in items}
            return result
        except (ValueError, json.JSONDecodeError) as exc:
            # A 200 whose body is not a GenerateContentResponse at all.
            self.budget.settle(est, None)
            result = CallResult(usage=Usage(calls=1), unparseable=True)
            result.bad = {it.cache_key: f"invalid response ({type(exc).__name__})" for it in items}
            return result
        usage, reported = self._usage(response.usage_metadata, model, text, len(items))
        self.budget.settle(est, cost_usd(model, usage, self._config.prices, self.today))
        if reported and usage.input_tokens:
            self.calibration.observe(estimate_tokens(self._system + text), usage.input_tokens)
        blocked = blocked_reason(response)
        if blocked is not None:
            result = CallResult(usage=usage, unparseable=True, blocked=blocked)
            result.bad = {it.cache_key: blocked for it in items}
            return result
        answer_text = None
        if response.candidates and response.candidates[0].content:
            parts = response.candidates[0].content.parts or []
            answer_text = "".join(p.text for p in parts if p.text and not p.thought)
        result = parse_answer(answer_text, items, self._config.max_findings_per_file)
        result.usage = usage
        return result

    # -- the Provider protocol --------------------------------------------------------------

    def _next_model(self, tier: str, gone_model: str) -> str | None:
        if self.plan is None:
            return None
        with self._down_lock:
            gone = set(self._gone) | {gone_model}
        nxt = self.plan.next_model(tier, gone)
        with self._replan_lock:
            if nxt is None and self._replan is not None:
                # The plan came from the restored list file: before calling this an outage
                # (which fail-open would pass), see whether the API itself has a model left.
                try:
                    self._relist(f"no model left for the {tier} tier in the cached models list")
                except ProviderError:
                    return None
                with self._down_lock:
                    self._gone.add(gone_model)
                    gone = set(self._gone)
                nxt = self.plan.next_model(tier, gone)
        return nxt

    def review_batch(self, batch: Batch) -> BatchOutcome:
        findings: dict[str, list[Finding]] = {}
        summaries: dict[str, str] = {}
        failed: dict[str, str] = {}
        causes: dict[str, NotReviewedCause] = {}  # where a failure is not the provider's
        omitted: dict[str, int] = {}
        usage_by_model: dict[str, Usage] = {}
        answered_by: dict[str, str] = {}
        fallbacks: list[ModelFallback] = []
        retries = self._settings.item_retries
        pending: list[tuple[list[ReviewItem], int, str]] = [(list(batch.items), 0, batch.model)]
        while pending:
            items, tries, model = pending.pop(0)
            down = self.down_reason
            if down is not None:
                failed.update({it.cache_key: f"provider unavailable: {down}" for it in items})
                continue
            try:
                result = self._call(model, items)
            except _ModelGone as exc:
                self._mark_gone(model)
                nxt = self._next_model(batch.tier, model)
                why = f"{model} unavailable ({exc})"
                fallbacks.append(ModelFallback(batch.tier, model, nxt, why, len(items)))
                if nxt is None:
                    reason = f"no model left to review it: {why}"
                    failed.update({it.cache_key: reason for it in items})
                else:
                    pending.append((items, tries, nxt))
                continue
            except _OverBudget as exc:
                failed.update({it.cache_key: str(exc) for it in items})
                # The automatic cap spent on retries of a failing provider is an outage.
                cause: NotReviewedCause = "provider" if self.wire.failed_responses else "budget"
                causes.update({it.cache_key: cause for it in items})
                continue
            except _Unavailable as exc:
                self._mark_down(str(exc))
                failed.update({it.cache_key: f"provider unavailable: {exc}" for it in items})
                continue
            except _Rejected as exc:
                # The provider is up and refused what was sent (built from the PR's content):
                # not an outage that `review.unreviewed: neutral` may pass.
                failed.update({it.cache_key: str(exc) for it in items})
                causes.update({it.cache_key: "content" for it in items})
                continue
            usage_by_model[model] = usage_by_model.get(model, Usage()) + result.usage
            findings.update(result.ok)
            summaries.update({k: v for k, v in result.summaries.items() if k in result.ok})
            omitted.update(result.omitted)
            if model != batch.model:
                answered_by.update({k: model for k in result.ok})
            bad = [it for it in items if it.cache_key in result.bad]
            if result.unparseable and len(bad) > 1:
                half = len(bad) // 2
                pending.extend([(bad[:half], tries, model), (bad[half:], tries, model)])
                continue
            for it in bad:
                # A safety block of one file is its content's doing: asking again changes
                # nothing. Answers that stay unusable are the content's doing too (a prompt
                # injection can ask for them): neither is an outage that fail-open may pass.
                if tries < retries and result.blocked is None:
                    pending.append(([it], tries + 1, model))
                else:
                    failed[it.cache_key] = result.bad[it.cache_key]
                    causes[it.cache_key] = "content"
        return BatchOutcome(
            batch=batch,
            findings=findings,
            failed=failed,
            causes=causes,
            omitted=omitted,
            usage_by_model=usage_by_model,
            answered_by=answered_by,
            fallbacks=fallbacks,
            summaries=summaries,
        )

    def review(self, batches: list[Batch]) -> list[BatchOutcome]:
        if not batches:
            return []
        self.wire.limit = self.wire.used + call_cap(len(batches))
        workers = min(self._settings.concurrency, len(batches))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gemini")
        try:
            futures = [pool.submit(self.review_batch, b) for b in batches]
            return [f.result() for f in futures]
        except ProviderError:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def get_model(self, model: str) -> gtypes.Model:
        """The API's record of `model` (models.get); the SDK raises APIError 404 when unknown."""
        return self._get_client().models.get(model=model)

    def count_tokens(self, model: str, text: str) -> int:
        """The provider's own count (free of charge on Gemini); used to check our estimates."""
        response = self._get_client().models.count_tokens(model=model, contents=text)
        return int(response.total_tokens or 0)


def gemini_from_env(
    env: Mapping[str, str],
    config: ReviewConfig,
    *,
    calibration: CalibrationTracker | None = None,
    budget: CallBudget | None = None,
) -> GeminiProvider | None:
    key = first_set(env, GEMINI_KEYS)
    if not key:
        return None
    return GeminiProvider(
        key,
        config,
        base_url=env.get(GEMINI_BASE_URL) or None,
        calibration=calibration,
        budget=budget,
    )
