"""The HTTP transport under google-genai: the key stays at its origin, answers are bounded,
calls are counted.

google-genai sends the API key as the `x-goog-api-key` header and its httpx client follows
redirects; httpx drops only `Authorization` when a redirect leaves the origin, so a base URL
that answers `302 Location: https://elsewhere/` would hand the key to `elsewhere`. Every
request, redirect hops included, passes `GuardedTransport.handle_request`, which:
- refuses any URL whose origin (scheme, host, port) is not the configured base URL's: nothing,
  key or body, is ever sent there (`OriginRefused`); same-origin redirects still work;
- spends one unit of the run's `WireBudget` per generateContent request (the SDK's own
  retries and gatebot's re-asks alike) and refuses to send past it (`CallCapReached`);
- reads at most `max_answer_bytes` of a response body, decompressed (gzip/deflate only, which
  is all it advertises), and refuses more (`AnswerTooLarge`): a 30 MB answer never reaches
  the JSON parser, so memory stays bounded whatever the endpoint sends.
Proxies from the environment (HTTPS_PROXY, NO_PROXY) are honoured by the inner client.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

import httpx2 as httpx

from bot.redact import origin, redact
from bot.review.budget import call_cap

__all__ = ["call_cap"]  # the cap's formula lives beside the user's caps (bot/review/budget.py)

# The most a Gemini answer can sensibly be: 65,536 output tokens of JSON text, escaped once
# more inside the response's JSON, is well under 1 MB; 4 MiB leaves room for any metadata.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"  # google-genai's own default
_GENERATE = ":generateContent"
_STEP = 64 * 1024


class TransportRefused(httpx.TransportError):
    """A request gatebot refused to send, or an answer it refused to read."""


class OriginRefused(TransportRefused):
    """A request (usually a redirect) to an origin other than the configured base URL."""


class AnswerTooLarge(TransportRefused):
    """A response body over the answer size cap."""


class CallCapReached(TransportRefused):
    """The run's automatic call cap is spent; no further model request is sent."""


@dataclass
class WireBudget:
    """Model requests a run may still send over the wire; shared by every thread of the run.
    (The user's caps in calls and dollars are bot/review/budget.py's; this one is automatic.)"""

    limit: int | None = None  # None: no cap (the provider used on its own, e.g. benchmarks)
    used: int = 0
    failed_responses: int = 0  # non-200 answers and transport failures among them
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> bool:
        with self._lock:
            if self.limit is not None and self.used >= self.limit:
                return False
            self.used += 1
            return True

    def note_failure(self) -> None:
        with self._lock:
            self.failed_responses += 1

    def forgive(self) -> None:
        """Give back a request that found a model gone (404): walking the fallback chain is
        bounded by the run's models, each found gone once, and is not the work this cap
        bounds (a lite file may try eight models before a live one), nor a provider failure."""
        with self._lock:
            if self.limit is not None:
                self.limit += 1
            self.failed_responses = max(0, self.failed_responses - 1)

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.limit is not None and self.used >= self.limit


class _BoundedStream(httpx.SyncByteStream):
    """The body, decompressed when it was, cut off with AnswerTooLarge past `limit` bytes."""

    def __init__(self, raw: Iterable[bytes], close: object, encoding: str, limit: int) -> None:
        self._raw = raw
        self._close = close
        self._limit = limit
        # wbits 47: gzip or zlib header, auto-detected; "deflate" in HTTP means zlib.
        self._inflate = zlib.decompressobj(47) if encoding in ("gzip", "deflate") else None

    def _decoded(self) -> Iterator[bytes]:
        for chunk in self._raw:
            if self._inflate is None:
                yield chunk
                continue
            data = chunk
            while data:
                # At most _STEP bytes out per step: a gzip bomb is cut off after the cap.
                yield self._inflate.decompress(data, _STEP)
                data = self._inflate.unconsumed_tail
        if self._inflate is not None:
            yield self._inflate.flush()

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for piece in self._decoded():
            total += len(piece)
            if total > self._limit:
                raise AnswerTooLarge(f"the answer is over {self._limit:,} bytes: not read")
            yield piece

    def close(self) -> None:
        close = getattr(self._close, "close", None)
        if callable(close):
            close()


class GuardedTransport(httpx.BaseTransport):
    """See the module docstring. `inner` (tests inject one) sends what passes the checks."""

    def __init__(
        self,
        base_url: str,
        budget: WireBudget,
        *,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self._origin = origin(base_url)
        self._shown = redact(base_url)
        self.budget = budget
        self._max = max_answer_bytes
        self._inner = inner
        self._client: httpx.Client | None = None

    def _send(self, request: httpx.Request) -> httpx.Response:
        if self._inner is not None:
            return self._inner.handle_request(request)
        if self._client is None:
            # Environment proxies and TLS defaults as httpx applies them; no redirects here
            # (the outer client follows them, through this transport's origin check).
            self._client = httpx.Client(follow_redirects=False, timeout=None)
        return self._client.send(request, stream=True)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = str(request.url)
        try:
            same = origin(target) == self._origin
        except ValueError:
            same = False
        if not same:
            raise OriginRefused(
                f"refused to send to {redact(target.split('?')[0])}: not the origin of the "
                f"configured base URL {self._shown} (credentials only go there)"
            )
        counted = request.url.path.endswith(_GENERATE)
        if counted and not self.budget.take():
            raise CallCapReached(f"the run's call cap ({self.budget.limit}) is spent")
        request.headers["accept-encoding"] = "gzip, deflate"
        try:
            response = self._send(request)
        except httpx.TransportError:
            if counted:
                self.budget.note_failure()
            raise
        if counted and response.status_code != 200:
            self.budget.note_failure()
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        length = response.headers.get("content-length", "")
        too_long = length.isdigit() and int(length) > self._max
        if too_long or encoding not in ("identity", "gzip", "deflate", ""):
            response.close()
            why = f"{int(length):,} bytes" if too_long else f"content-encoding {encoding!r}"
            raise AnswerTooLarge(f"refused an answer of {why} (cap {self._max:,} bytes)")
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_BoundedStream(
                cast("Iterable[bytes]", response.stream), response, encoding, self._max
            ),
            extensions=response.extensions,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._inner is not None:
            self._inner.close()
