"""Closing a check run that a review left open (killed, timed out, crashed, refused to start).

A required status that stays `in_progress` blocks a merge forever, and one that ends neutral
passes it: so what nobody finished ends `failure` (or `timed_out` / `cancelled`), with a title
that says why and a summary that links the run's log. `ActionsContext.abandon`
(bot/github/integration.py) calls this and reports on the job summary; `gatebot action
check-abandon` (bot/cli/action.py) and the crash handler (bot/github/crash.py) reach it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from github.GithubObject import NotSet
from github.Repository import Repository

from bot.github.checks import CheckOutput, CheckRunPublisher, Conclusion
from bot.inert import printable
from bot.redact import redact
from bot.review.summary import escape_md


@dataclass(frozen=True)
class Abandoned:
    """What the closed check says: `why` (one inert, redacted line) under `heading`."""

    why: str
    heading: str
    output: CheckOutput


def abandoned(reason: str, title: str | None, log_link: str | None) -> Abandoned:
    """The title and summary of a check nothing finished (pure)."""
    # The reason may quote an exception that quotes a URL or a model's text: inert, no secret.
    why = printable(redact(" ".join(reason.split())))[:300]
    heading = printable(title)[:255] if title else f"gatebot did not finish: {why}"[:255]
    summary = (
        f"The review did not complete: {escape_md(why)}. Nothing was reviewed to "
        "completion, so the check fails closed; re-run the job."
    )
    if log_link:
        summary += f" The log: [{escape_md(log_link)}]({log_link})."
    return Abandoned(why, heading, CheckOutput(title=heading, summary=summary))


def close_check(
    repo: Repository,
    check_name: str,
    head_sha: str,
    closing: Abandoned,
    conclusion: Conclusion,
    log_link: str | None,
) -> bool:
    """Complete `check_name` on `head_sha` as `conclusion`, or post it completed when there is
    none; a check run that already completed is left alone (it holds a real verdict). True
    when a check run was closed or posted. API errors propagate: the caller decides."""
    publisher = CheckRunPublisher(repo, check_name, log_link)
    now = datetime.now(timezone.utc)
    output = closing.output.body()
    run = publisher.find_existing(head_sha)
    if run is None:
        repo.create_check_run(
            name=check_name,
            head_sha=head_sha,
            status="completed",
            conclusion=conclusion,
            completed_at=now,
            output=output,
            details_url=log_link if log_link else NotSet,
        )
        return True
    if run.status != "completed":
        run.edit(status="completed", conclusion=conclusion, completed_at=now, output=output)
        return True
    return False
