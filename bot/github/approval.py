"""A maintainer's approval of one head commit: the unblock path of a gate that fails closed.

The gate fails on what nobody reviewed (files not reviewed, protected paths) and on blocking
findings. A maintainer who has read the change approves **that head SHA** through a trigger
GitHub authorises (the `gatebot approve` workflow_dispatch workflow; a PR comment command can
call the same `approve()`). The approval is recorded where a pull request cannot write it
without `checks: write` on the base repository — on the gate's own check run for that SHA:
- `external_id` holds the record (who, when, which SHA, through what, the run that did it), so
  a later run of the gate on the same SHA (a re-run) honours it (`approval_on`);
- the check becomes `success`, its title and summary say who approved what and when, and what
  the gate had said; nothing else about the review is changed.
A new push is a new SHA with a new check run: the approval does not carry over.

Who may approve: someone with write access or above (the API's `permission`: admin or write;
GitHub's maintain role reads as write), not a bot, and not the author of the pull request.

What is approved is exactly what was read: a SHA names the commit in full (a 7-digit prefix
is 28 bits, which a PR author can match with a commit of their own in a minute and push
between the maintainer's reading and the approval). A comment that names no SHA approves the
head only when gatebot's check on it had completed when the comment was written — a result
the maintainer could read — and never from a re-run of the comment's job, which would approve
whatever the head is by then (docs/security.md, §6.13). With a SHA, a comment still approves
only a check that had completed when it was written: the verdict it passes is one the
maintainer could read. (`gatebot approve`, the workflow_dispatch form, may approve ahead of
the review: the review then honours it.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from github import GithubException
from github.CheckRun import CheckRun
from github.GithubObject import NotSet
from github.Repository import Repository

from bot.errors import GatebotError
from bot.github.checks import CheckOutput, CheckRunPublisher
from bot.github.limits import CHECK_TEXT_LIMIT, truncate
from bot.inert import printable
from bot.review.models import Approval, Verdict
from bot.review.summary import code, escape_md

RECORD_PREFIX = "gatebot-approval/v1 "
APPROVING_PERMISSIONS = frozenset({"admin", "write"})
_SHA = re.compile(r"[0-9a-f]{40}")
# GitHub logins: alphanumerics and single hyphens; apps end in "[bot]".
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


class ApprovalRefused(GatebotError):
    """The approval was not recorded: who asked may not approve, or not this commit."""

    exit_code = 1


def record(approval: Approval) -> str:
    """The check run's external_id for `approval` (compact JSON after a versioned prefix)."""
    return RECORD_PREFIX + approval.model_dump_json(exclude_none=True)


def parse_record(external_id: str | None, head_sha: str) -> Approval | None:
    """The approval an external_id records for exactly `head_sha`, or None (anything else,
    malformed or for another commit, is no approval)."""
    if not external_id or not external_id.startswith(RECORD_PREFIX):
        return None
    try:
        data = json.loads(external_id[len(RECORD_PREFIX) :])
        approval = Approval.model_validate(data)
    except ValueError:
        return None
    if approval.sha != head_sha or not _LOGIN.fullmatch(approval.approver):
        return None
    return approval


def approval_on(run: CheckRun | None, head_sha: str, pr: int | None = None) -> Approval | None:
    """The approval recorded on `run` for `head_sha` — and, when `pr` is known, for that pull
    request: check runs belong to a commit, and two pull requests can share a head (the same
    branch proposed to `develop` and to `main`); approving one is not approving the other."""
    approval = parse_record(run.external_id if run is not None else None, head_sha)
    if approval is not None and pr is not None and approval.pr not in (None, pr):
        return None
    return approval


def authorise(repo: Repository, approver: str, pr_author: str | None) -> str:
    """The approver's permission when they may approve; ApprovalRefused (saying why) if not."""
    if not _LOGIN.fullmatch(approver):
        raise ApprovalRefused(f"{printable(approver)!r} is not a GitHub login")
    if approver.endswith("[bot]"):
        raise ApprovalRefused(f"{approver} is a bot: only a person can approve")
    if pr_author is not None and approver.lower() == pr_author.lower():
        raise ApprovalRefused(
            f"{approver} wrote this pull request: its author cannot approve their own change",
            hint="ask another maintainer",
        )
    try:
        permission = repo.get_collaborator_permission(approver)
    except GithubException as exc:
        raise ApprovalRefused(
            f"could not read {approver}'s permission on the repository (HTTP {exc.status})"
        ) from None
    if permission not in APPROVING_PERMISSIONS:
        raise ApprovalRefused(
            f"{approver} has {permission!r} access: approving needs write access or above"
        )
    return permission


@dataclass(frozen=True)
class ApprovalResult:
    approval: Approval
    check_run_url: str
    before: str  # the check's status or conclusion before the approval
    note: str  # one line for people: what happened


def approval_note(approval: Approval) -> str:
    """Markdown: who approved which commit, when, and through what (with the run's link)."""
    via = approval.via.replace("_", " ")
    run = f" ([run]({approval.run_url}))" if approval.run_url else ""
    return (
        # The login matched _LOGIN (letters, digits, hyphens): no markup to escape.
        f"Approved by @{approval.approver} for head "
        f"{code(approval.sha[:12])} at {approval.approved_at} through {escape_md(via)}{run}. "
        "The approval covers this commit only; a new push is reviewed again."
    )


def apply_approval(verdict: Verdict, approval: Approval | None) -> Verdict:
    """The verdict with a maintainer's approval of its head: the conclusion becomes success,
    the gate's own verdict and reasons stay as they were (both are shown)."""
    if approval is None or approval.sha != verdict.head_sha or verdict.conclusion == "success":
        return verdict
    return verdict.model_copy(update={"approval": approval, "conclusion": "success"})


def approved_summary(approval: Approval, summary_md: str) -> str:
    return f"> ✅ {approval_note(approval)}\n\n{summary_md}"


def approved_output(approval: Approval, title: str, summary: str) -> CheckOutput:
    head = f"> ✅ {approval_note(approval)}\n\n"
    return CheckOutput(
        title=f"approved by @{approval.approver}: {title}"[:255],
        summary=head + truncate(summary, CHECK_TEXT_LIMIT - len(head) - 1, "the job summary"),
    )


def _finished_by(run: CheckRun, written_at: datetime | None) -> bool:
    """Whether `run` had completed when the comment was written (to the second: GitHub gives
    a comment's time in whole seconds). Unknown times are not "before"."""
    done = run.completed_at
    if written_at is None or done is None:
        return False
    if done.tzinfo is None:
        done = done.replace(tzinfo=timezone.utc)
    if written_at.tzinfo is None:
        written_at = written_at.replace(tzinfo=timezone.utc)
    return done.replace(microsecond=0) <= written_at


def approve(
    repo: Repository,
    *,
    check_name: str,
    pr_number: int,
    sha: str | None,
    approver: str,
    via: str,
    run_url: str | None = None,
    now: datetime | None = None,
    written_at: datetime | None = None,
    require_verdict: bool = False,
) -> ApprovalResult:
    """Record `approver`'s approval of pull request `pr_number` at head `sha` on the gate's
    check run (`check_name`) of that commit. `sha` is what the maintainer read, in full, and
    must be the pull request's head *now*. `sha=None` (a `/gatebot approve` comment naming no
    commit): the head now, provided gatebot's check on it had completed by `written_at` (when
    the comment was written; GitHub's clock). `require_verdict` (the comment form): the same
    also with a SHA — a comment approves a verdict the maintainer could have read, never one
    still to come (which could hold anything, a committed key included).

    The head is read once; everything after (the check run found, the record written) is
    bound to that full SHA. A push landing meanwhile moves the pull request to a new commit
    with a check run of its own, which this approval never touches."""
    wanted = sha.strip().lower() if sha is not None else None
    if wanted is not None and not _SHA.fullmatch(wanted):
        raise ApprovalRefused(
            f"{printable(sha or '')[:60]!r} is not a full commit SHA (40 hex digits)",
            hint="copy the full SHA of the commit you read (a short prefix can be matched "
            "by another commit pushed in the meantime)",
        )
    try:
        pr = repo.get_pull(pr_number)
        head, author, state = pr.head.sha, pr.user.login, pr.state
    except GithubException as exc:
        raise ApprovalRefused(f"pull request #{pr_number} not found (HTTP {exc.status})") from None
    if state != "open":
        raise ApprovalRefused(f"pull request #{pr_number} is {state}: nothing to approve")
    if not _SHA.fullmatch(head) or (wanted is not None and head != wanted):
        raise ApprovalRefused(
            f"pull request #{pr_number}'s head is {head[:12]}, not {(wanted or '?')[:12]}: a "
            "newer commit was pushed after the one you read",
            hint="read the new commit, then approve its SHA",
        )
    authorise(repo, approver, author)
    publisher = CheckRunPublisher(repo, check_name, run_url)
    run = publisher.find_existing(head)
    completed = run is not None and run.status == "completed"
    if wanted is None and not completed:
        # Nothing says the commenter saw this commit: it may have been pushed after they read
        # the pull request (or after they wrote the comment, while this job was starting).
        raise ApprovalRefused(
            f"gatebot has not finished reviewing the head {head[:12]}: nothing shows you read "
            "it (it may have been pushed after your comment)",
            hint=f"read it, then comment `/gatebot approve {head}`",
        )
    if require_verdict and not completed:
        raise ApprovalRefused(
            f"gatebot has not finished reviewing {head[:12]}: an approval covers a verdict you "
            "have read, not one still to come",
            hint="approve once its check has completed (`/gatebot review` runs it)",
        )
    if (
        (require_verdict or wanted is None)
        and run is not None
        and not _finished_by(run, written_at)
    ):
        # Reviewed after the comment was written (pushed meanwhile, or the review was still
        # running): the maintainer approved before that verdict existed.
        raise ApprovalRefused(
            f"gatebot's check on {head[:12]} completed after your comment was written: you "
            "could not have read its verdict",
            hint=f"read it, then comment `/gatebot approve {head}`",
        )
    when = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    approval = Approval(
        sha=head,
        approver=approver,
        approved_at=when.isoformat().replace("+00:00", "Z"),
        via=via,
        run_url=run_url,
        pr=pr_number,
    )
    note = approval_note(approval)
    if run is None:
        output = CheckOutput(
            title=f"approved by @{approver} (not reviewed by gatebot yet)",
            summary=f"> ✅ {note}\n\nNo gatebot review of this commit had reported yet.",
        )
        run = repo.create_check_run(
            name=check_name,
            head_sha=head,
            status="completed",
            conclusion="success",
            completed_at=when,
            external_id=record(approval),
            output=output.body(),
            details_url=run_url if run_url else NotSet,
        )
        return ApprovalResult(approval, run.html_url, "none", "recorded on a new check run")
    before = run.conclusion or run.status
    if run.status != "completed":
        # The review is still running: it reads the record when it completes.
        run.edit(external_id=record(approval))
        return ApprovalResult(
            approval, run.html_url, before, "recorded; the running review will honour it"
        )
    title = run.output.title if run.output and run.output.title else "gatebot review"
    summary = run.output.summary if run.output and run.output.summary else ""
    if title.startswith("approved by @"):  # approved before: replace that approval's note
        title = title.split(": ", 1)[-1]
        if summary.startswith("> ✅ Approved by"):
            summary = summary.split("\n\n", 1)[-1]
    run.edit(
        external_id=record(approval),
        conclusion="success",
        completed_at=when,
        output=approved_output(approval, title, summary).body(),
    )
    return ApprovalResult(approval, run.html_url, before, f"the check was {before}; now success")
