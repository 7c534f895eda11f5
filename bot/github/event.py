"""Read the webhook payload Actions writes to GITHUB_EVENT_PATH.

Only what the gate needs. `pull_request(_target)`: the PR number, the base and head commits and
whether the head lives in a fork (forks get no secrets and a read-only token, which changes how
results are posted). `merge_group` (`checks_requested`, from a merge queue): the group's base
and head commits; the check belongs on `merge_group.head_sha` (GitHub's description of the
event; the payload's `head_commit.id` may differ). `issue_comment`: bot/github/comment_event.py.
Payloads are untrusted input: every field read is type-checked, commit ids must be hex SHAs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import UsageError

PR_EVENTS = frozenset({"pull_request", "pull_request_target"})
MERGE_GROUP = "merge_group"
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


@dataclass(frozen=True)
class PullRequestEvent:
    event_name: str
    action: str | None
    number: int
    base_sha: str
    head_sha: str
    base_ref: str
    head_ref: str
    base_repo: str
    head_repo: str | None  # None when the fork was deleted after the PR was opened
    fork: bool
    # `synchronize`: the head before the push (the payload's `before`); None otherwise
    before: str | None = None
    # `edited`: whether the base branch changed (`changes.base`); a title or body edit leaves
    # the diff as it was, a new base makes it another diff on the same head commit.
    base_changed: bool = False

    def skip_reason(self) -> str | None:
        """Why this event asks for no review (None: review it)."""
        if self.action == "edited" and not self.base_changed:
            return "an `edited` event that did not change the base branch (the diff is the same)"
        return None


def sha(payload: Mapping[str, Any], dotted: str, source: str) -> str:
    """A commit id from the payload: 40 (SHA-1) or 64 (SHA-256) lower-case hex digits."""
    value = text_at(payload, dotted, source)
    if not _SHA.fullmatch(value):
        raise UsageError(f"{source}: `{dotted}` is not a commit SHA: {value[:80]!r}")
    return value


def value_at(payload: Mapping[str, Any], dotted: str, source: str) -> Any:
    node: Any = payload
    walked: list[str] = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or node.get(part) is None:
            raise UsageError(
                f"{source}: `{'.'.join(walked)}` is missing from the event payload",
                hint="the payload must be a pull_request webhook event as GitHub sends it",
            )
        node = node[part]
    return node


def text_at(payload: Mapping[str, Any], dotted: str, source: str) -> str:
    value = value_at(payload, dotted, source)
    if not isinstance(value, str) or not value:
        raise UsageError(f"{source}: `{dotted}` must be a non-empty string, got {value!r}")
    return value


def parse_pull_request(
    event_name: str, payload: Mapping[str, Any], source: str = "event payload"
) -> PullRequestEvent:
    if event_name not in PR_EVENTS:
        raise UsageError(f"{source}: `{event_name}` is not a pull request event")
    if not isinstance(payload, Mapping):
        raise UsageError(f"{source}: the payload must be a JSON object")
    number = value_at(payload, "pull_request.number", source)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise UsageError(f"{source}: `pull_request.number` must be a positive integer")
    base_repo = text_at(payload, "pull_request.base.repo.full_name", source)
    head = value_at(payload, "pull_request.head", source)
    head_repo_obj = head.get("repo") if isinstance(head, Mapping) else None
    head_repo: str | None = None
    fork = True  # a head repository that no longer exists can only have been a fork
    if isinstance(head_repo_obj, Mapping):
        head_repo = text_at(payload, "pull_request.head.repo.full_name", source)
        # `head.repo.fork` alone is not enough: it is also true for a PR between two branches
        # of a repository that is itself a fork. What matters is whether head and base are
        # different repositories (then the run gets no secrets and a read-only token).
        base_id = value_at(payload, "pull_request.base.repo", source).get("id")
        head_id = head_repo_obj.get("id")
        fork = head_repo.lower() != base_repo.lower() or (
            bool(head_repo_obj.get("fork")) and base_id is not None and head_id != base_id
        )
    action = payload.get("action")
    before = payload.get("before")
    changes = payload.get("changes")
    return PullRequestEvent(
        event_name=event_name,
        action=action if isinstance(action, str) else None,
        number=number,
        # Commit ids, never revisions: `HEAD` or a branch name would pick what is reviewed.
        base_sha=sha(payload, "pull_request.base.sha", source),
        head_sha=sha(payload, "pull_request.head.sha", source),
        base_ref=text_at(payload, "pull_request.base.ref", source),
        head_ref=text_at(payload, "pull_request.head.ref", source),
        base_repo=base_repo,
        head_repo=head_repo,
        fork=fork,
        before=before if isinstance(before, str) and _SHA.fullmatch(before) else None,
        base_changed=isinstance(changes, Mapping) and isinstance(changes.get("base"), Mapping),
    )


def read_payload(path: Path) -> Mapping[str, Any]:
    source = f"GITHUB_EVENT_PATH ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{source}: cannot read the event payload: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source}: the event payload is not UTF-8: {exc.reason}") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source}: not valid JSON: nested too deeply") from None
    if not isinstance(payload, Mapping):
        raise UsageError(f"{source}: the payload must be a JSON object")
    return payload


def load_pull_request(event_name: str, path: Path) -> PullRequestEvent:
    return parse_pull_request(event_name, read_payload(path), f"GITHUB_EVENT_PATH ({path})")


@dataclass(frozen=True)
class MergeGroupEvent:
    """A merge queue asks for checks on a temporary branch: base plus the queued PRs."""

    action: str | None
    base_sha: str
    head_sha: str  # the check run goes here
    base_ref: str  # refs/heads/main
    head_ref: str  # refs/heads/gh-readonly-queue/main/pr-N-<sha>

    @property
    def base_branch(self) -> str:
        return self.base_ref.removeprefix("refs/heads/")

    def skip_reason(self) -> str | None:
        """Why this event asks for no review: only `checks_requested` does (`destroyed` says
        the group was merged, dequeued or invalidated: its head needs no check)."""
        if self.action not in (None, "checks_requested"):
            # The action is the payload's: not repeated (it is shown in the job summary).
            return "a merge_group event other than `checks_requested` (the group was destroyed)"
        return None


def parse_merge_group(payload: Mapping[str, Any], source: str = "event payload") -> MergeGroupEvent:
    action = payload.get("action")
    return MergeGroupEvent(
        action=action if isinstance(action, str) else None,
        base_sha=sha(payload, "merge_group.base_sha", source),
        head_sha=sha(payload, "merge_group.head_sha", source),
        base_ref=text_at(payload, "merge_group.base_ref", source),
        head_ref=text_at(payload, "merge_group.head_ref", source),
    )


def load_merge_group(path: Path) -> MergeGroupEvent:
    return parse_merge_group(read_payload(path), f"GITHUB_EVENT_PATH ({path})")


def refuse_untrusted_checkout(pr: PullRequestEvent, head_in_workspace: bool) -> None:
    """`pull_request_target` runs with secrets and a write token: the PR's code must not be
    in the workspace (checked out, or merged into what is), where the configuration and
    anything else would be read from it. The Action reviews the PR head as git objects only.
    """
    if pr.event_name != "pull_request_target" or not head_in_workspace:
        return
    raise UsageError(
        f"pull_request_target: the workspace contains the PR head {pr.head_sha[:12]}; "
        "refusing to run with secrets on the PR's own files",
        hint="check out the base (the default for pull_request_target) and fetch the PR "
        "head as a ref only: git fetch origin refs/pull/N/head",
    )
