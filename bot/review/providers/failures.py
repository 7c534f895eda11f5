"""What a failed Gemini call means: the outcomes the provider acts on, and how the SDK's errors
are sorted into them.

- `Unavailable`: an outage (5xx, 429, timeouts, the connection) after every retry: the rest of
  the run's files go uncovered, cause `provider`;
- `Rejected`: the API is up and refused what was sent (400, 413, 422 that name neither the key
  nor the model): the content's doing, cause `content`;
- `ModelGone`: the API does not serve the model: its files move to the next model of the plan;
- `OverBudget`: the user's spend or call cap refused the call (bot/review/budget.py): cause
  `budget`, whatever else happened in the run; `AutoCapSpent`: the automatic call cap did
  (bot/review/providers/transport.py);
- `AnswerRefused`: the answer was over the size cap and was not read.
A rejected API key is none of these: it raises ProviderError (bot/errors.py), which ends the
provider's work for the run.
"""

from __future__ import annotations

import importlib
import json
import re

from google.genai import errors as genai_errors


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


TRANSPORT_ERRORS = _transport_errors()
# Left to the SDK's own retry (bot/review/providers/client.py); 429 is retried by gatebot.
SDK_RETRY_CODES = [408, 500, 502, 503, 504]
_AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED")


class Unavailable(Exception):
    """The provider did not answer after every retry (outage, quota, timeouts)."""


class Rejected(Exception):
    """The provider refused this request (request too large, bad argument): not an outage."""


class ModelGone(Exception):
    """The API does not serve this model (retired, unknown, not for generateContent)."""


class OverBudget(Exception):
    """The run's call or dollar cap refused this call (bot/review/budget.py)."""


class AutoCapSpent(OverBudget):
    """The run's automatic call cap refused this call (bot/review/providers/transport.py):
    spent on a failing provider's retries, or on answers that stayed unusable."""


class AnswerRefused(Exception):
    """The answer was over the size cap: not read (bot/review/providers/transport.py)."""


_GONE_RE = re.compile(
    r"(?i)\b(not found|not supported for generatecontent|no longer (available|supported)"
    r"|has been (retired|shut down|discontinued)|is not available)\b"
)


def is_model_gone(exc: genai_errors.APIError) -> bool:
    if exc.code == 404:
        return True
    text = f"{exc.status or ''} {exc.message or ''}"
    return (
        exc.code in (400, 403)
        and "api key" not in text.lower()
        and "model" in text.lower()
        and bool(_GONE_RE.search(text))
    )


def retry_delay(exc: BaseException) -> float | None:
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


def is_auth_error(exc: genai_errors.APIError) -> bool:
    if exc.code in (401, 403):
        return not is_model_gone(exc)
    return exc.code == 400 and any(r in json.dumps(exc.details) for r in _AUTH_REASONS)
