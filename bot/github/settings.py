"""The Actions environment a gatebot step runs in, parsed once (`ActionsSettings`).

Read by the check-run context (bot/github/integration.py), the PR comment commands
(bot/github/pr_commands.py, bot/github/pr_approve.py), `gatebot approve` (bot/cli/approve.py)
and `gatebot doctor`. It imports nothing of gatebot's GitHub outlets, so any of them can read
the settings without importing the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.config.env import GITHUB_API_URL, GITHUB_TOKENS, first_set
from bot.errors import UsageError
from bot.redact import redact

DEFAULT_CHECK_NAME = "gatebot / review"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise UsageError(f"{name} must be true or false, got {raw!r}")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


def _attempt(raw: str) -> int:
    """GITHUB_RUN_ATTEMPT; unset is a first attempt, anything unreadable is not one."""
    raw = raw.strip()
    if not raw:
        return 1
    return int(raw) if raw.isdigit() and len(raw) < 6 else 2


@dataclass(frozen=True)
class ActionsSettings:
    """Everything the integration reads from the environment, parsed once."""

    repository: str | None
    api_url: str
    server_url: str
    token: str | None
    event_name: str
    event_path: Path | None
    step_summary: Path | None
    output: Path | None
    check_name: str
    post_check: bool
    sarif: Path | None
    run_id: str | None
    run_attempt: int = 1  # GITHUB_RUN_ATTEMPT: 2 and up for a re-run (same event payload)

    @classmethod
    def parse(cls, env: Mapping[str, str]) -> ActionsSettings:
        repository = env.get("GITHUB_REPOSITORY", "").strip() or None
        if repository is not None and repository.count("/") != 1:
            raise UsageError(f"GITHUB_REPOSITORY must be OWNER/NAME, got {repository!r}")
        check_name = env.get("GATEBOT_CHECK_NAME", "").strip() or DEFAULT_CHECK_NAME
        return cls(
            repository=repository,
            api_url=env.get(GITHUB_API_URL, "").strip() or DEFAULT_API_URL,
            server_url=env.get("GITHUB_SERVER_URL", "").strip() or DEFAULT_SERVER_URL,
            token=first_set(env, GITHUB_TOKENS),
            event_name=env.get("GITHUB_EVENT_NAME", "").strip(),
            event_path=_path(env, "GITHUB_EVENT_PATH"),
            step_summary=_path(env, "GITHUB_STEP_SUMMARY"),
            output=_path(env, "GITHUB_OUTPUT"),
            check_name=check_name,
            post_check=_flag(env, "GATEBOT_POST_CHECK", True),
            sarif=_path(env, "GATEBOT_SARIF"),
            run_id=env.get("GITHUB_RUN_ID", "").strip() or None,
            run_attempt=_attempt(env.get("GITHUB_RUN_ATTEMPT", "")),
        )

    def details_url(self) -> str | None:
        """The run's log: GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID."""
        if self.repository and self.run_id:
            server = redact(self.server_url.rstrip("/"))  # never a credential in a link
            return f"{server}/{self.repository}/actions/runs/{self.run_id}"
        return None
