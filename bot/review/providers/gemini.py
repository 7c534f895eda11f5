"""Gemini as the review's model provider: structured answers, bounded concurrency, usage.

Each batch is one `generateContent` call through google-genai (the client and its retries:
bot/review/providers/client.py; what a failure means: bot/review/providers/failures.py):
- an answer that is unparseable, or leaves a file's block number out of `reviewed`, or has a
  malformed finding for a file: that file is asked again on its own (a whole unparseable
  answer is first halved);
- a model the API says is gone (404, or a 400 naming the model as not found / not supported)
  is not an outage: its files move to the next model of the run's ModelPlan (same tier, then
  the next tier; bot/review/providers/roster.py), recorded in `BatchOutcome.fallbacks`;
- every call first takes a slot from the run's CallBudget (bot/review/budget.py).
When the provider stays down, what is left comes back in `BatchOutcome.failed`; only a rejected
API key raises (ProviderError). The key is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from google.genai import types as gtypes

from bot.config.env import GEMINI_BASE_URL, GEMINI_KEYS, first_set
from bot.config.review import ReviewConfig
from bot.errors import ProviderError
from bot.redact import redact
from bot.review.budget import CallBudget
from bot.review.cost import cost_usd, price_for, today_utc
from bot.review.models import Finding, NotReviewedCause
from bot.review.prompt import batch_text, system_instruction
from bot.review.providers.answer import (
    CallResult,
    blocked_reason,
    parse_answer,
    reported_usage,
)
from bot.review.providers.client import GeminiClient
from bot.review.providers.failures import (
    AnswerRefused,
    AutoCapSpent,
    ModelGone,
    OverBudget,
    Rejected,
    Unavailable,
)
from bot.review.providers.params import generation_config
from bot.review.providers.roster import ModelRoster
from bot.review.providers.transport import (
    DEFAULT_BASE_URL,
    GuardedTransport,
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


def cache_seal_for(api_key: str) -> bytes:
    """The review cache's seal key, derived from the API key (HMAC with a fixed label, so the
    key itself is never what signs, and a seal never reveals it): the secret the gate's step
    holds and code a pull request runs in CI does not (docs/security.md, §6.3)."""
    label = b"gatebot review cache seal v1"
    return hmac.new(api_key.encode("utf-8", "surrogateescape"), label, hashlib.sha256).digest()


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
        self.cache_seal = cache_seal_for(api_key)
        self._config = config
        self._settings = config.gemini
        self._base_url = base_url
        self.calibration = calibration or CalibrationTracker()
        self.budget = budget or CallBudget(config.max_calls, config.max_usd)
        self.wire = WireBudget()  # the automatic cap, set per run in review()
        self.transport = GuardedTransport(
            base_url or os.environ.get(GEMINI_BASE_URL) or DEFAULT_BASE_URL, self.wire
        )
        self._down: str | None = None
        self._down_lock = threading.Lock()
        self._system = system_instruction(config)
        self.client = GeminiClient(
            api_key,
            config.gemini,
            base_url=base_url,
            transport=self.transport,
            sleep=sleep,
            on_key_rejected=self._mark_down,
        )
        self.roster = ModelRoster(
            self.client, base_url, config.models_list_ttl_s, today or today_utc()
        )

    def __repr__(self) -> str:  # never show the key, nor credentials in the base URL
        return f"GeminiProvider(base_url={redact(self._base_url or '')!r})"

    def _mark_down(self, reason: str) -> None:
        with self._down_lock:
            if self._down is None:
                log.warning("Gemini unavailable, remaining files go uncovered: %s", reason)
                self._down = reason

    @property
    def down_reason(self) -> str | None:
        with self._down_lock:
            return self._down

    # -- models ---------------------------------------------------------------------------

    def plan_models(self, tiers: dict[str, str], fallback: list[str], cache_dir: Path) -> ModelPlan:
        """Tiers → live models, once per run (bot/review/providers/roster.py)."""
        return self.roster.plan_models(tiers, fallback, cache_dir)

    def list_models(self) -> list[str]:
        """Ids of the models the API lists for `generateContent` (models.list, all pages)."""
        return self.client.list_models()

    def get_model(self, model: str) -> gtypes.Model:
        """The API's record of `model` (models.get); the SDK raises APIError 404 when unknown."""
        return self.client.get_model(model)

    def count_tokens(self, model: str, text: str) -> int:
        """The provider's own count (free of charge on Gemini); used to check our estimates."""
        return self.client.count_tokens(model, text)

    # -- calls ----------------------------------------------------------------------------

    def _generation_config(self, model: str) -> gtypes.GenerateContentConfig:
        return generation_config(model, self._settings, self._system)

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
        p = price_for(model, self._config.prices, self.roster.today)
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
            raise OverBudget(refused)
        try:
            response = self.client.generate(model, text, self._generation_config(model))
        except (ModelGone, Rejected, Unavailable, OverBudget, ProviderError):
            self.budget.release(est)  # an error answer is not billed
            raise
        except AnswerRefused as exc:
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
        self.budget.settle(est, cost_usd(model, usage, self._config.prices, self.roster.today))
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
                if self.roster.is_gone(model):
                    # Another batch of this run found it gone: no call (each would be another
                    # 404, a slot of the call budget and a failed response on the wire).
                    raise ModelGone("found gone earlier in this run")
                result = self._call(model, items)
            except ModelGone as exc:
                if self.roster.mark_gone(model):
                    self.wire.forgive()  # the first 404 of a gone model: the fallback's own
                nxt = self.roster.next_model(batch.tier, model)
                why = f"{model} unavailable ({exc})"
                fallbacks.append(ModelFallback(batch.tier, model, nxt, why, len(items)))
                if nxt is None:
                    reason = f"no model left to review it: {why}"
                    failed.update({it.cache_key: reason for it in items})
                else:
                    pending.append((items, tries, nxt))
                continue
            except OverBudget as exc:
                failed.update({it.cache_key: str(exc) for it in items})
                # The automatic cap spent on retries of a failing provider is an outage; the
                # user's caps are the budget's, even after an error the retries got past
                # (fail-open must not pass what a cap left unreviewed).
                outage = isinstance(exc, AutoCapSpent) and self.wire.failed_responses > 0
                cause: NotReviewedCause = "provider" if outage else "budget"
                causes.update({it.cache_key: cause for it in items})
                continue
            except Unavailable as exc:
                self._mark_down(str(exc))
                failed.update({it.cache_key: f"provider unavailable: {exc}" for it in items})
                continue
            except Rejected as exc:
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
