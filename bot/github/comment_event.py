"""The `issue_comment` webhook payload, and the `/gatebot` command a comment may carry.

The payload is untrusted input twice over: its shape (type-checked field by field) and the
comment's body, written by anyone who may comment. A command is recognised only on the body's
first non-blank line (`/gatebot <verb>`), so quoting, showing as code or mentioning a command
in prose never runs it; the verb is matched against a closed list and nothing else of the body
is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from bot.errors import UsageError
from bot.github.event import read_payload, text_at, value_at

COMMENT_EVENT = "issue_comment"
PREFIX = "/gatebot"
Verb = Literal["review", "approve", "help"]
VERBS: tuple[Verb, ...] = ("review", "approve", "help")
# GitHub logins: alphanumerics and single hyphens, at most 39 characters; apps end in [bot].
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:\[bot\])?")
_MAX_BODY = 65_536  # GitHub's limit for a comment body
_FIRST_LINE_WORDS = 8


@dataclass(frozen=True)
class CommentEvent:
    action: str | None
    repository: str  # owner/name of the repository the workflow runs in
    number: int  # the issue or pull request number
    is_pull_request: bool
    comment_id: int
    body: str
    login: str
    user_type: str  # "User", "Bot", "Organization", ...
    issue_author: str | None
    # When the comment was written (GitHub's clock, whole seconds); None when the payload
    # carries no readable time (then nothing may depend on it: approval needs a SHA).
    created_at: datetime | None = None

    @property
    def is_bot(self) -> bool:
        return self.user_type == "Bot" or self.login.endswith("[bot]")


@dataclass(frozen=True)
class Command:
    verb: Verb | None  # None: `/gatebot` with an unknown or missing verb
    word: str  # what was written after /gatebot (for the reply), at most 40 characters
    # The word after the verb (`/gatebot approve <sha>`), at most 80 characters; None: none.
    argument: str | None = None


def valid_login(login: str) -> bool:
    return bool(_LOGIN.fullmatch(login))


def _mapping(payload: Mapping[str, Any], dotted: str, source: str) -> Mapping[str, Any]:
    value = value_at(payload, dotted, source)
    if not isinstance(value, Mapping):
        raise UsageError(f"{source}: `{dotted}` must be an object")
    return value


def _positive_int(payload: Mapping[str, Any], dotted: str, source: str) -> int:
    value = value_at(payload, dotted, source)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{source}: `{dotted}` must be a positive integer")
    return value


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone (GitHub's `2019-05-15T15:20:21Z`), in UTC; else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(timezone.utc) if when.tzinfo is not None else None


def parse_comment(payload: Mapping[str, Any], source: str = "event payload") -> CommentEvent:
    login = text_at(payload, "comment.user.login", source)
    if not valid_login(login):
        raise UsageError(f"{source}: `comment.user.login` is not a GitHub login: {login[:60]!r}")
    repository = text_at(payload, "repository.full_name", source)
    if repository.count("/") != 1:
        raise UsageError(f"{source}: `repository.full_name` must be OWNER/NAME")
    body = _mapping(payload, "comment", source).get("body")
    if body is not None and not isinstance(body, str):
        raise UsageError(f"{source}: `comment.body` must be a string")
    issue = _mapping(payload, "issue", source)
    issue_user = issue.get("user")
    author = issue_user.get("login") if isinstance(issue_user, Mapping) else None
    user_type = _mapping(payload, "comment.user", source).get("type")
    action = payload.get("action")
    return CommentEvent(
        action=action if isinstance(action, str) else None,
        repository=repository,
        number=_positive_int(payload, "issue.number", source),
        # GitHub sends `issue.pull_request` (an object) only for comments on pull requests.
        is_pull_request=isinstance(issue.get("pull_request"), Mapping),
        comment_id=_positive_int(payload, "comment.id", source),
        body=(body or "")[:_MAX_BODY],
        login=login,
        user_type=user_type if isinstance(user_type, str) else "User",
        issue_author=author if isinstance(author, str) and valid_login(author) else None,
        created_at=_timestamp(_mapping(payload, "comment", source).get("created_at")),
    )


def load_comment(path: Path) -> CommentEvent:
    return parse_comment(read_payload(path), f"GITHUB_EVENT_PATH ({path})")


def parse_command(body: str) -> Command | None:
    """The command on the body's first non-blank line, or None when it carries none."""
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(raw.expandtabs(4)) - len(raw.expandtabs(4).lstrip()) >= 4:
            # Four spaces of indentation open a Markdown code block (CommonMark): a command
            # shown as code, like one quoted with `>` or fenced with ```, is not one given.
            return None
        words = line.split(maxsplit=_FIRST_LINE_WORDS)
        if not words or words[0].lower() != PREFIX:
            return None
        word = words[1].lower() if len(words) > 1 else ""
        verb = next((v for v in VERBS if v == word), None)
        argument = words[2][:80] if len(words) > 2 else None
        return Command(verb, word[:40], argument)
    return None
