"""`/gatebot approve [SHA]`: the PR-comment trigger of the approval core (bot/github/approval.py).

The core records a maintainer's approval of one head SHA on the gate's own check run (which
then passes, saying who approved what and when) and refuses bots, the PR's author, anyone
below write access, a closed pull request and a SHA that is not the head. A comment approves
a verdict gatebot has completed on that head (without a SHA: completed before the comment
was written). This module adds what only a comment needs: the refusal of a re-run, the
comment's time, and the reply text.
"""

from __future__ import annotations

from github.Repository import Repository

from bot.github.approval import ApprovalRefused, approval_note, approve
from bot.github.comment_event import CommentEvent
from bot.github.pulls import PullInfo
from bot.github.settings import ActionsSettings


def approve_from_comment(
    settings: ActionsSettings,
    repo: Repository,
    event: CommentEvent,
    pull: PullInfo,
    sha: str | None = None,
) -> str:
    """The reply to `/gatebot approve [SHA]` (a refusal says why). Without a SHA, the head
    now, if gatebot's check on it has completed and this is not a re-run of the comment's job:
    a re-run replays the old comment, and would approve whatever the head has become."""
    if sha is None and settings.run_attempt > 1:
        return (
            "🚫 Refused: this is a re-run of the job of an earlier `/gatebot approve` comment, "
            "which named no commit; it would approve whatever the head is now. Comment "
            f"`/gatebot approve {pull.head_sha}` once you have read that commit."
        )
    try:
        result = approve(
            repo,
            check_name=settings.check_name,
            pr_number=pull.number,
            sha=sha,
            approver=event.login,
            via="issue_comment",
            run_url=settings.details_url(),
            written_at=event.created_at,
            require_verdict=True,
        )
    except ApprovalRefused as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return f"🚫 Refused: {exc.message}{hint}."
    note = approval_note(result.approval)
    return f"✅ {note}\n\n[The check run]({result.check_run_url}): {result.note}."
