"""`/gatebot approve`: the PR-comment trigger of the approval core (`bot.github.approval`).

The core records a maintainer's approval of one head SHA on the gate's own check run (which
then passes, saying who approved what and when) and refuses bots, the PR's author and anyone
below write access. The comment command approves the head the PR has *now*, read from the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bot.github.comment_event import CommentEvent
from bot.github.pulls import PullInfo

if TYPE_CHECKING:
    from bot.github.integration import ActionsContext


def approve_from_comment(
    ctx: ActionsContext, event: CommentEvent, pull: PullInfo, sha: str | None = None
) -> str:
    """The reply to `/gatebot approve [SHA]` (a refusal says why). Without a SHA, the head
    now, if gatebot's check on it has completed and this is not a re-run of the comment's job:
    a re-run replays the old comment, and would approve whatever the head has become."""
    try:
        core: Any = importlib.import_module("bot.github.approval")
    except ModuleNotFoundError:
        return (
            "🚫 `/gatebot approve` is not available in this gatebot version: approve the head "
            "commit with the `gatebot approve` workflow instead."
        )
    s = ctx.settings
    if sha is None and s.run_attempt > 1:
        return (
            "🚫 Refused: this is a re-run of the job of an earlier `/gatebot approve` comment, "
            "which named no commit; it would approve whatever the head is now. Comment "
            f"`/gatebot approve {pull.head_sha}` once you have read that commit."
        )
    repo = ctx.repository()
    try:
        result = core.approve(
            repo,
            check_name=s.check_name,
            pr_number=pull.number,
            sha=sha,
            approver=event.login,
            via="issue_comment",
            run_url=s.details_url(),
        )
    except core.ApprovalRefused as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return f"🚫 Refused: {exc.message}{hint}."
    note = core.approval_note(result.approval)
    return f"✅ {note}\n\n[The check run]({result.check_run_url}): {result.note}."
