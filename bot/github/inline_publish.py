"""Post one PR review per run with the planned inline comments; resolve the ones now fixed.

Order: read the PR's review comments (ours carry a marker, bot/github/inline.py), post the
new comments as a single review on the head commit, then for each of our comments whose
finding is gone: mark its text resolved (REST) and resolve its thread (GraphQL). Nothing here
can fail the run: an API refusal becomes a note in the job summary, and the check run with
its annotations still carries every finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
import requests
from github import GithubException

from bot.errors import GatebotError
from bot.github import inline
from bot.github.difflines import pr_diff
from bot.github.inline import CommentsMode, FileLines, Planned
from bot.github.pulls import OutletError, PullRequestOutlet
from bot.review.models import Verdict

if TYPE_CHECKING:
    from bot.github.integration import ActionsContext

_ERRORS = (GithubException, requests.RequestException, OSError, OutletError)


@dataclass
class InlineReport:
    posted: int = 0
    suggestions: int = 0
    kept: int = 0
    resolved: int = 0
    dropped: int = 0
    refused: int = 0  # GitHub answered 422 for these (a line not in its diff)
    review_url: str | None = None
    problems: list[str] = field(default_factory=list)

    def note(self) -> str:
        parts = [f"{self.posted} new inline comment{'s' if self.posted != 1 else ''}"]
        if self.suggestions:
            parts[0] += f" ({self.suggestions} with a committable suggestion)"
        if self.kept:
            parts.append(f"{self.kept} already on the PR, not repeated")
        if self.resolved:
            parts.append(f"{self.resolved} resolved (their finding is gone)")
        if self.dropped:
            parts.append(
                f"{self.dropped} more not posted (at most "
                f"{inline.MAX_COMMENTS_PER_REVIEW} per review; see the annotations)"
            )
        text = "Inline review: " + "; ".join(parts) + "."
        if self.problems:
            text += " " + " ".join(self.problems)
        return text


def _why(exc: Exception) -> str:
    if isinstance(exc, GithubException):
        return f"HTTP {exc.status}"
    return type(exc).__name__


def review_body(verdict: Verdict, post: list[Planned]) -> str:
    fixes = sum(1 for p in post if p.has_suggestion)
    head = verdict.head_sha[:12]
    text = f"**gatebot** found {len(post)} issue{'s' if len(post) != 1 else ''} on `{head}`"
    if fixes:
        text += f", {fixes} with a committable suggestion"
    return text + ". The check run has the full verdict."


def _post_review(
    outlet: PullRequestOutlet,
    number: int,
    verdict: Verdict,
    post: list[Planned],
    report: InlineReport,
) -> None:
    """Post `post` as one review. GitHub refuses a whole review (HTTP 422) for one comment on a
    line its diff does not show (its diff can differ from ours: whitespace, renames, a file
    too large to render); then each half is posted on its own, down to the single comment
    refused, so one bad line never loses the others. Other errors propagate."""
    try:
        url = outlet.create_review(
            number, verdict.head_sha, review_body(verdict, post), [p.comment for p in post]
        )
    except GithubException as exc:
        if exc.status != 422:
            raise
        if len(post) == 1:
            report.refused += 1
            return
        half = len(post) // 2
        _post_review(outlet, number, verdict, post[:half], report)
        _post_review(outlet, number, verdict, post[half:], report)
        return
    report.review_url = report.review_url or url
    report.posted += len(post)
    report.suggestions += sum(1 for p in post if p.has_suggestion)


def publish(
    outlet: PullRequestOutlet,
    number: int,
    verdict: Verdict,
    files: Mapping[str, FileLines],
    mode: CommentsMode,
) -> InlineReport:
    report = InlineReport()
    planned = inline.plan(verdict, files, mode)
    try:
        posted = outlet.review_comments(number)
    except _ERRORS as exc:
        report.problems.append(f"Review comments not read ({_why(exc)}): nothing was posted.")
        return report
    covered = {fr.path for fr in verdict.files if fr.covered}
    in_pr = {fr.path for fr in verdict.files}
    sync = inline.reconcile(planned, posted, covered, in_pr)
    report.kept, report.dropped = len(sync.kept), sync.dropped
    if sync.post:
        try:
            _post_review(outlet, number, verdict, sync.post, report)
        except _ERRORS as exc:
            what = "Part of the review" if report.posted else "The review"
            report.problems.append(
                f"{what} was not posted ({_why(exc)}); the findings are in the annotations."
            )
        if report.refused:
            report.problems.append(
                f"GitHub refused {report.refused} comment{'s' if report.refused != 1 else ''} "
                "(HTTP 422: a line its diff does not show); the finding"
                f"{'s are' if report.refused != 1 else ' is'} in the annotations."
            )
    if not sync.stale:
        return report
    try:
        threads = {t.first_comment: t for t in outlet.threads(number)}
    except _ERRORS as exc:
        threads = {}
        report.problems.append(f"Review threads not read ({_why(exc)}): marked, not resolved.")
    for comment in sync.stale:
        fp = inline.parse_marker(comment.body)
        assert fp is not None  # reconcile() only returns our own comments
        try:
            outlet.edit_review_comment(
                comment.id, inline.resolved_body(comment.body, fp[0], verdict.head_sha)
            )
            thread = threads.get(comment.id)
            if thread is not None and not thread.resolved:
                outlet.resolve_thread(thread.id)
            report.resolved += 1
        except _ERRORS as exc:
            report.problems.append(f"A fixed finding's comment was not resolved ({_why(exc)}).")
    return report


def post_inline(ctx: ActionsContext, verdict: Verdict, mode: CommentsMode, repo: Path) -> None:
    """The inline review of a pull-request run, its outcome noted in the job summary."""
    pr = ctx.pr
    if pr is None or mode == "off":
        return
    if pr.fork and pr.event_name == "pull_request":
        ctx.notes.append(
            "Inline comments are off on fork PRs (their token is read-only): the findings "
            "are annotations. A maintainer's `/gatebot review` comment posts them."
        )
        return
    outlet = ctx.pulls()
    if outlet is None:
        return
    try:
        files = pr_diff(repo, verdict.base_sha, verdict.head_sha, verdict.files)
    except (GatebotError, pygit2.GitError, OSError, ValueError) as exc:
        # Never worth a check left in progress: the findings are in the annotations anyway.
        ctx.notes.append(f"Inline review skipped: the PR diff could not be read ({exc}).")
        return
    ctx.notes.append(publish(outlet, pr.number, verdict, files, mode).note())
