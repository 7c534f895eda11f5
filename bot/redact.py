"""Credentials inside URLs, redacted wherever a URL is shown.

`GOOGLE_GEMINI_BASE_URL` and `GITHUB_API_URL` may carry credentials (`https://user:pass@proxy/`,
`?key=…` — Gemini's API accepts its key as a query parameter too). gatebot sends them only to
that origin (bot/review/providers/transport.py) and never shows them: `doctor`, log lines,
error messages, summaries and the verdict/metrics files go through `redact`.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

REDACTED = "***"
# Query parameters that carry a credential (compared in lower case).
SECRET_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "access_token",
        "token",
        "auth",
        "password",
        "secret",
        "client_secret",
        "sig",
        "signature",
        "x-goog-api-key",
    }
)
# `scheme://userinfo@` anywhere in a text, and `name=value` query pairs after a `?` or `&`.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@]*@")
_PARAM = re.compile(r"(?i)([?&;])([a-z0-9_.-]+)=([^&;#\s\"'<>]*)")


def _param(m: re.Match[str]) -> str:
    if m.group(2).lower() in SECRET_PARAMS and m.group(3):
        return f"{m.group(1)}{m.group(2)}={REDACTED}"
    return m.group(0)


def redact(text: str) -> str:
    """`text` with the userinfo of every URL and every credential query value replaced."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    if "=" in text:
        text = _PARAM.sub(_param, text)
    return text


def has_credentials(url: str) -> bool:
    return redact(url) != url


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit; raises ValueError."""
    parts: SplitResult = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port
