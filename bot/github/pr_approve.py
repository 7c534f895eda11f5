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


def approve_from_comment(ctx: ActionsContext, event: CommentEvent, pull: PullInfo) -> str:
    """The reply to `/gatebot approve` (a refusal says why)."""
    try:
        core: Any = importlib.import_module("bot.github.approval")
    except ModuleNotFoundError:
        return (
            "🚫 `/gatebot approve` is not available in this gatebot version: approve the head "
            "commit with the `gatebot approve` workflow instead."
        )
    s = ctx.settings
    repo = ctx.repository()
    try:
        result = core.approve(
            repo,
            check_name=s.check_name,
            pr_number=pull.number,
            sha=pull.head_sha,
            approver=event.login,
            via="issue_comment",
            run_url=s.details_url(),
        )
    except core.ApprovalRefused as exc:
        return f"🚫 Refused: {exc.message}."
    note = core.approval_note(result.approval)
    return f"✅ {note}\n\n[The check run]({result.check_run_url}): {result.note}."
