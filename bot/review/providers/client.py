"""The wire to Gemini: one google-genai client per run and the retries layered on the SDK's.

- 5xx, 408, timeouts and connection errors: google-genai's own `HttpRetryOptions`
  (exponential backoff with jitter, bounded attempts) plus a per-request timeout;
- 429: the SDK's retry ignores the server's `google.rpc.RetryInfo` delay (checked in
  google-genai 3.6 `_api_client.retry_args`), so 429 is left out of its status codes and a
  tenacity loop (the SDK's own retry library) waits what the server asks, within a bound.
What a call's failure means is decided in bot/review/providers/failures.py; every request,
redirects included, goes through the guarded transport (bot/review/providers/transport.py).
The key is never logged.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import tenacity
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from bot.config.routing import GeminiConfig
from bot.errors import ProviderError
from bot.review.budget import BUDGET_REASON
from bot.review.providers.failures import (
    SDK_RETRY_CODES,
    TRANSPORT_ERRORS,
    AnswerRefused,
    AutoCapSpent,
    ModelGone,
    Rejected,
    Unavailable,
    is_auth_error,
    is_model_gone,
    retry_delay,
)
from bot.review.providers.resolve import generate_models
from bot.review.providers.transport import (
    AnswerTooLarge,
    CallCapReached,
    GuardedTransport,
    OriginRefused,
)


def key_rejected(code: int, status: str | None = None) -> ProviderError:
    answer = f"HTTP {code} {status or ''}".strip()
    return ProviderError(
        f"Gemini rejected the API key ({answer})", hint="check GEMINI_API_KEY / GOOGLE_API_KEY"
    )


class GeminiClient:
    """google-genai's client, made on first use (no I/O before), and the calls gatebot makes.

    `on_key_rejected(reason)` is told before ProviderError is raised for a rejected key, so
    that the calls in flight on other threads stop before their next request."""

    def __init__(
        self,
        api_key: str,
        settings: GeminiConfig,
        *,
        base_url: str | None,
        transport: GuardedTransport,
        sleep: Callable[[float], None],
        on_key_rejected: Callable[[str], None],
    ) -> None:
        self._api_key = api_key
        self._settings = settings
        self._base_url = base_url
        self._transport = transport
        self._sleep = sleep
        self._on_key_rejected = on_key_rejected
        self._client: genai.Client | None = None
        self._lock = threading.Lock()

    def sdk(self) -> genai.Client:
        with self._lock:
            if self._client is None:
                s = self._settings
                retry = gtypes.HttpRetryOptions(
                    attempts=s.attempts,
                    initial_delay=s.initial_delay_s,
                    max_delay=s.max_delay_s,
                    exp_base=2.0,
                    jitter=s.jitter_s,
                    http_status_codes=SDK_RETRY_CODES,
                )
                options = gtypes.HttpOptions(
                    base_url=self._base_url,  # None: the SDK reads GOOGLE_GEMINI_BASE_URL itself
                    timeout=max(int(s.timeout_s * 1000), 1),
                    retry_options=retry,
                    # Every request, redirects included, through the guard: the key only to
                    # the configured origin, answers bounded, requests counted against the
                    # run's call cap (bot/review/providers/transport.py).
                    client_args={"transport": self._transport, "trust_env": False},
                )
                self._client = genai.Client(
                    api_key=self._api_key, vertexai=False, http_options=options
                )
            return self._client

    def reject_key(self, exc: genai_errors.APIError, *, status: bool = True) -> ProviderError:
        """Every other call would be refused too: say so, and the error to raise."""
        self._on_key_rejected(f"API key rejected (HTTP {exc.code})")
        return key_rejected(exc.code, exc.status if status else None)

    def _wait_429(self, state: tenacity.RetryCallState) -> float:
        s = self._settings
        exc = state.outcome.exception() if state.outcome else None
        server = retry_delay(exc) if exc is not None else None
        if server is not None:
            return min(server, s.max_retry_delay_s) + random.uniform(0, s.jitter_s)
        expo = tenacity.wait_exponential_jitter(
            initial=s.initial_delay_s, max=s.max_delay_s, exp_base=2.0, jitter=s.jitter_s
        )
        return float(expo(state))

    def _retryable_429(self, exc: BaseException) -> bool:
        if not (isinstance(exc, genai_errors.APIError) and exc.code == 429):
            return False
        delay = retry_delay(exc)
        # A quota that resets in an hour is not worth waiting for inside a CI job.
        return delay is None or delay <= self._settings.max_retry_delay_s

    def generate(
        self, model: str, text: str, config: gtypes.GenerateContentConfig
    ) -> gtypes.GenerateContentResponse:
        """One generateContent call, retried; failures come out as the classes of
        bot/review/providers/failures.py (ProviderError for a rejected key)."""
        s = self._settings
        client = self.sdk()
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
            if is_model_gone(exc):
                raise ModelGone(f"HTTP {exc.code} {exc.status or ''}".strip()) from None
            if is_auth_error(exc):
                raise self.reject_key(exc) from None
            if exc.code == 429:
                raise Unavailable(f"rate limited or out of quota (HTTP 429 {exc.status})") from None
            if exc.code in SDK_RETRY_CODES or exc.code >= 500:
                raise Unavailable(f"HTTP {exc.code} {exc.status} after retries") from None
            refused = f"request refused: HTTP {exc.code} {exc.message or ''}".strip()
            raise Rejected(refused) from None
        except CallCapReached as exc:
            raise AutoCapSpent(f"{BUDGET_REASON}: {exc}") from None
        except AnswerTooLarge as exc:
            raise AnswerRefused(str(exc)) from None
        except OriginRefused as exc:
            raise Unavailable(str(exc)) from None
        except TRANSPORT_ERRORS as exc:
            kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
            raise Unavailable(f"{kind} after retries ({type(exc).__name__})") from None

    def list_models(self) -> list[str]:
        """Ids of the models the API lists for `generateContent` (models.list, all pages)."""
        pager = self.sdk().models.list(config={"page_size": 1000})
        return generate_models(pager)

    def get_model(self, model: str) -> gtypes.Model:
        """The API's record of `model` (models.get); the SDK raises APIError 404 when unknown."""
        return self.sdk().models.get(model=model)

    def count_tokens(self, model: str, text: str) -> int:
        """The provider's own count (free of charge on Gemini); used to check our estimates."""
        response = self.sdk().models.count_tokens(model=model, contents=text)
        return int(response.total_tokens or 0)
