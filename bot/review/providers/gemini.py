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
When the provider stays down, what is left comes back in `BatchOutcome.failed`; only a rejected
API key raises (ProviderError). The key is never logged.
"""

from __future__ import annotations

import importlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import tenacity
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes
from pydantic import ValidationError

from bot.config.review import ReviewConfig
from bot.errors import ProviderError
from bot.review.models import Finding
from bot.review.prompt import Answer, AnswerFinding, batch_text, system_instruction
from bot.review.tokens import CalibrationTracker, estimate_tokens
from bot.review.types import Batch, BatchOutcome, ReviewItem, Usage

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
    """The provider refused this request (bad model name, request too large): not an outage."""


@dataclass
class _CallResult:
    usage: Usage
    ok: dict[str, list[Finding]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    unparseable: bool = False


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
        return True
    return exc.code == 400 and any(r in json.dumps(exc.details) for r in _AUTH_REASONS)


def _clean_finding(item: ReviewItem, raw: AnswerFinding) -> Finding:
    line = raw.line if raw.line is not None and raw.line >= 1 else None
    end = raw.end_line if line is not None and raw.end_line and raw.end_line >= line else None
    last = end or line or 0
    category = re.sub(r"\s+", "-", raw.category.strip().lower())[:40] or "general"
    return Finding(
        path=item.path,
        line=line,
        end_line=end,
        severity=raw.severity,
        category=category,
        message=raw.message.strip()[:_MAX_MESSAGE] or "(no message)",
        source="model",
        # Only a finding on a changed line can be a line annotation; others go to the summary.
        # (checked against the changed lines, not by walking a span a model could make huge)
        in_diff=line is not None and any(line <= n <= last for n in item.changed_lines),
    )


def _block_number(value: object, count: int) -> int | None:
    """A block number of this batch (1..count), or None. JSON `true` is not the number 1."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= count:
        return value
    return None


def _shown(value: object) -> str:
    """What a log line may show of a model's block number: a number, else only its type."""
    return str(value) if isinstance(value, int | float) else type(value).__name__


def parse_answer(text: str | None, items: Sequence[ReviewItem]) -> _CallResult:
    """Map an answer back to the items asked (block n is items[n - 1], as batch_text numbers
    them). A block is answered when `reviewed` names it or a finding does; a finding naming no
    block of the batch is ignored; a block with a malformed finding is bad (asked again)."""
    result = _CallResult(usage=Usage())
    try:
        data = json.loads(text or "")
        reviewed, raw_findings = data["reviewed"], data["findings"]
        if not isinstance(reviewed, list) or not isinstance(raw_findings, list):
            raise TypeError("reviewed and findings must be lists")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the interpreter's recursion limit.
        result.unparseable = True
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        reason = "empty answer" if not (text or "").strip() else f"unparseable answer ({why})"
        result.bad = {it.cache_key: reason for it in items}
        return result

    count = len(items)
    answered: set[int] = set()
    for value in reviewed:
        number = _block_number(value, count)
        if number is None:
            log.info("ignoring reviewed %s: no such block among %d", _shown(value), count)
            continue
        answered.add(number)

    found: dict[int, list[Finding]] = {}
    errors: dict[int, int] = {}
    for entry in raw_findings:
        named = entry.get("file") if isinstance(entry, dict) else None
        number = _block_number(named, count)
        if number is None or not isinstance(entry, dict):
            # Like a finding about a file that was not asked: never attached to any file.
            # (only the number is logged: the rest is model text)
            log.info("ignoring a finding on file %s: no such block among %d", _shown(named), count)
            continue
        # The answer model checks the shape; only the severity's spelling is forgiven first.
        if isinstance(entry.get("severity"), str):
            entry["severity"] = entry["severity"].strip().lower()
        try:
            raw = AnswerFinding.model_validate(entry)
        except ValidationError as exc:
            errors[number] = errors.get(number, 0) + exc.error_count()
            continue
        answered.add(number)  # a finding on a block says it was reviewed
        found.setdefault(number, []).append(_clean_finding(items[number - 1], raw))

    for number, item in enumerate(items, start=1):
        if number in errors:
            result.bad[item.cache_key] = f"malformed answer for the file ({errors[number]} errors)"
        elif number in answered:
            result.ok[item.cache_key] = found.get(number, [])
        else:
            result.bad[item.cache_key] = "missing from the answer"
    return result


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
    ) -> None:
        # No I/O here: the client (and its connection pool) is made on first use.
        self._api_key = api_key
        self._config = config
        self._settings = config.gemini
        self._base_url = base_url
        self._sleep = sleep
        self.calibration = calibration or CalibrationTracker()
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()
        self._down: str | None = None
        self._down_lock = threading.Lock()
        self._system = system_instruction(config)

    def __repr__(self) -> str:  # never show the key
        return f"GeminiProvider(base_url={self._base_url!r})"

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

    def _generate(self, model: str, text: str) -> gtypes.GenerateContentResponse:
        s = self._settings
        config = gtypes.GenerateContentConfig(
            system_instruction=self._system,
            temperature=0.0,
            response_mime_type="application/json",
            response_schema=Answer,
            thinking_config=(
                gtypes.ThinkingConfig(thinking_budget=s.thinking_budget)
                if s.thinking_budget is not None
                else None
            ),
        )
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
        except _TRANSPORT_ERRORS as exc:
            kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
            raise _Unavailable(f"{kind} after retries ({type(exc).__name__})") from None

    def _call(self, model: str, items: Sequence[ReviewItem]) -> _CallResult:
        text = batch_text(items)
        try:
            response = self._generate(model, text)
        except (ValueError, json.JSONDecodeError) as exc:
            # A 200 whose body is not a GenerateContentResponse at all.
            result = _CallResult(usage=Usage(calls=1), unparseable=True)
            result.bad = {it.cache_key: f"invalid response ({type(exc).__name__})" for it in items}
            return result
        meta = response.usage_metadata
        prompt = (meta.prompt_token_count or 0) if meta else 0
        output = (
            ((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0
        )
        cached = (meta.cached_content_token_count or 0) if meta else 0
        if prompt:
            self.calibration.observe(estimate_tokens(self._system + text), prompt)
        answer_text = None
        if response.candidates and response.candidates[0].content:
            parts = response.candidates[0].content.parts or []
            answer_text = "".join(p.text for p in parts if p.text and not p.thought)
        result = parse_answer(answer_text, items)
        result.usage = Usage(
            calls=1, input_tokens=prompt, output_tokens=output, cached_tokens=cached
        )
        return result

    # -- the Provider protocol --------------------------------------------------------------

    def review_batch(self, batch: Batch) -> BatchOutcome:
        findings: dict[str, list[Finding]] = {}
        failed: dict[str, str] = {}
        usage = Usage()
        retries = self._settings.item_retries
        pending: list[tuple[list[ReviewItem], int]] = [(list(batch.items), 0)]
        while pending:
            items, tries = pending.pop(0)
            down = self.down_reason
            if down is not None:
                failed.update({it.cache_key: f"provider unavailable: {down}" for it in items})
                continue
            try:
                result = self._call(batch.model, items)
            except _Unavailable as exc:
                self._mark_down(str(exc))
                failed.update({it.cache_key: f"provider unavailable: {exc}" for it in items})
                continue
            except _Rejected as exc:
                failed.update({it.cache_key: str(exc) for it in items})
                continue
            usage = usage + result.usage
            findings.update(result.ok)
            bad = [it for it in items if it.cache_key in result.bad]
            if result.unparseable and len(bad) > 1:
                half = len(bad) // 2
                pending.extend([(bad[:half], tries), (bad[half:], tries)])
                continue
            for it in bad:
                if tries < retries:
                    pending.append(([it], tries + 1))
                else:
                    failed[it.cache_key] = result.bad[it.cache_key]
        usage_by_model = {batch.model: usage} if usage.calls else {}
        return BatchOutcome(
            batch=batch, findings=findings, failed=failed, usage_by_model=usage_by_model
        )

    def review(self, batches: list[Batch]) -> list[BatchOutcome]:
        if not batches:
            return []
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
) -> GeminiProvider | None:
    key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
    if not key:
        return None
    return GeminiProvider(
        key, config, base_url=env.get("GOOGLE_GEMINI_BASE_URL") or None, calibration=calibration
    )
