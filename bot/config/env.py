"""The names of the environment variables that carry keys, endpoints and gatebot's own settings
(README.md, docs/configuration.md): spelled once, here. The values are read where they are used
(config is read once and passed down), never printed."""

from __future__ import annotations

from collections.abc import Mapping

#: A Gemini API key; the first one set is used.
GEMINI_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
#: The Gemini SDK's own base-URL override (proxies, the loopback server in tests).
GEMINI_BASE_URL = "GOOGLE_GEMINI_BASE_URL"
#: A GitHub token; gatebot's own name first, then the one Actions provides.
GITHUB_TOKENS = ("GATEBOT_GITHUB_TOKEN", "GITHUB_TOKEN")
#: The REST API root (GitHub Enterprise Server; the loopback server in tests).
GITHUB_API_URL = "GITHUB_API_URL"
#: Where the review cache and the run history live.
CACHE_DIR = "GATEBOT_CACHE_DIR"
#: The review's time limit the Action sets (its `timeout-minutes` input), for the reason given
#: when that limit stops the review (bot/github/crash.py).
TIMEOUT_MINUTES = "GATEBOT_TIMEOUT_MINUTES"
#: `0` (or off, false, no): deploy commands neither use nor start a resident gatebot
#: (bot/cli/resident.py); each runs in its own process from the start.
RESIDENT = "GATEBOT_RESIDENT"
#: SSH material a deploy target may name with identity_env / known_hosts_env.
SSH_KEY = "GATEBOT_SSH_KEY"
KNOWN_HOSTS = "GATEBOT_KNOWN_HOSTS"
#: Values that must never be printed, whatever an error message echoes.
SECRETS = (*GEMINI_KEYS, *GITHUB_TOKENS, SSH_KEY, KNOWN_HOSTS)


def first_set(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The value of the first of `names` that is set and not blank, stripped."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None
