"""`/gatebot review | approve | help`: PR comment commands, run in the issue_comment workflow.

The workflow (written by `gatebot init`, docs/action.md "PR commands") runs in the base
repository's trusted context: the default branch's workflow file, its secrets and a write
token, with the base branch checked out. The PR's code is never checked out: `/gatebot review`
fetches the head as git objects (bot/github/fetch.py) and reviews it like a `pull_request` run,
completing the gate's own check run on the head SHA (a fork PR's secrets-less run cannot).

Order of a command: ignore anything that is not a `/gatebot` command on a pull request, and
our own comments (no loops); acknowledge with a 👀 reaction; authorise (bots never; `review`
and `approve` need write permission or above, read from the API, never from the payload);
act; answer with exactly one comment. Refusals are answers too: they say why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from github import GithubException

from bot.errors import GatebotError, InfrastructureError, UsageError
from bot.github.comment_event import Command, CommentEvent, load_comment, parse_command
from bot.github.event import PullRequestEvent
from bot.github.fetch import fetch_pull
from bot.github.integration import ActionsContext
from bot.github.pr_approve import approve_from_comment
from bot.github.pulls import OutletError, PullInfo, PullRequestOutlet
from bot.github.summary import headline
from bot.review.models import Verdict
from bot.review.summary import code

REPLY_MARKER = "<!-- gatebot:reply -->"
WRITE_PERMISSIONS = frozenset({"admin", "write"})  # the API's `permission` (maintain → write)
_API_ERRORS = (GithubException, requests.RequestException, OSError, OutletError)
_ICON = {"pass": "✅", "fail": "❌", "neutral": "⚪"}

HELP = """\
**gatebot commands** (comment on the pull request; the first line is the command):

| Command | What it does | Who |
|---|---|---|
| `/gatebot review` | Reviews the PR's current head with the repository's model key and \
completes the gate's check on it (also for PRs from forks, whose own run has no secrets). | \
write access |
| `/gatebot approve [SHA]` | Approves the protected and not-reviewed files of the head you \
read, once gatebot's check on it has finished — name its full SHA to be exact; without one, \
the current head if its check had finished when you commented: the check on that commit \
passes and says who approved it. A new push needs a new approval. | write access, not the \
PR's author |
| `/gatebot help` | This table. | anyone |"""

ReviewPull = Callable[[str, str], Verdict]


@dataclass(frozen=True)
class Outcome:
    text: str


def is_own(event: CommentEvent) -> bool:
    """A comment we wrote (our replies carry a marker; the token's bot writes them)."""
    return REPLY_MARKER in event.body or event.login == "github-actions[bot]"


def refusal(command: Command, event: CommentEvent, permission: str | None) -> str | None:
    """Why `event.login` may not run `command` (None: allowed). Pure."""
    if command.verb == "help":
        return None
    if event.is_bot:
        return "commands from bots are not accepted: a person with write access must ask"
    if permission not in WRITE_PERMISSIONS:
        have = permission or "none"
        return f"`/gatebot {command.verb}` needs write access to this repository (you have {have})"
    return None


def reply_text(event: CommentEvent, command: Command, answer: str) -> str:
    said = f"/gatebot {command.word}".strip()
    return f"> {code(said)} from @{event.login}\n\n{answer}\n{REPLY_MARKER}"


def _verdict_answer(verdict: Verdict, check_url: str | None) -> str:
    icon = _ICON.get(verdict.verdict, "⚪")
    text = f"{icon} **{verdict.verdict}** on {code(verdict.head_sha[:12])}: {headline(verdict)}."
    if check_url:
        text += f" [The check run]({check_url}) has the details."
    m = verdict.metrics
    return text + f"\n\n<sub>{m.api_calls} model call(s), ${m.cost_usd:.4f}.</sub>"


def _as_event(pull: PullInfo) -> PullRequestEvent:
    return PullRequestEvent(
        event_name="issue_comment",
        action=None,
        number=pull.number,
        base_sha=pull.base_sha,
        head_sha=pull.head_sha,
        base_ref=pull.base_ref,
        head_ref=pull.head_ref,
        base_repo=pull.base_repo,
        head_repo=pull.head_repo,
        fork=pull.fork,
    )


def _review(ctx: ActionsContext, repo: Path, pull: PullInfo, review_pull: ReviewPull) -> Outcome:
    s = ctx.settings
    fetch_pull(
        repo,
        pull.number,
        pull.base_ref,
        pull.head_sha,
        pull.base_sha,
        server_url=s.server_url,
        token=s.token,
    )
    ctx.pr = _as_event(pull)
    try:
        verdict = review_pull(pull.base_sha, pull.head_sha)
    except GatebotError as exc:
        # No exit path leaves the check in progress: close it (failure) with the reason.
        ctx.abandon(pull.head_sha, exc.message)
        raise
    return Outcome(_verdict_answer(verdict, ctx.check_url()))


def _act(
    ctx: ActionsContext,
    repo: Path,
    event: CommentEvent,
    command: Command,
    outlet: PullRequestOutlet,
    review_pull: ReviewPull,
) -> Outcome:
    if command.verb is None:
        unknown = f"{code(command.word)} is not" if command.word else "that is not"
        return Outcome(f"{unknown} a gatebot command.\n\n{HELP}")
    if command.verb == "help":
        return Outcome(HELP)
    permission = None if event.is_bot else outlet.permission(event.login)
    refused = refusal(command, event, permission)
    if refused is not None:
        return Outcome(f"🚫 Refused: {refused}.")
    pull = outlet.pull(event.number)
    if pull.state != "open":
        return Outcome(f"🚫 Refused: pull request #{pull.number} is {pull.state}.")
    if command.verb == "review":
        return _review(ctx, repo, pull, review_pull)
    return Outcome(
        approve_from_comment(ctx.settings, ctx.repository(), event, pull, command.argument)
    )


def run_comment(ctx: ActionsContext, repo: Path, review_pull: ReviewPull) -> int:
    """Handle the issue_comment event in GITHUB_EVENT_PATH; the exit code of the job step."""
    s = ctx.settings
    if s.event_path is None:
        raise UsageError("GITHUB_EVENT_PATH is not set for an issue_comment event")
    event = load_comment(s.event_path)
    command = parse_command(event.body)
    if not event.is_pull_request or command is None or is_own(event) or event.action != "created":
        print("gatebot: not a /gatebot command on a pull request; nothing to do", file=sys.stderr)
        return 0
    outlet = ctx.pulls()
    if outlet is None:
        raise UsageError("PR commands need a GitHub token (GATEBOT_GITHUB_TOKEN or GITHUB_TOKEN)")
    try:
        outlet.react(event.comment_id, "eyes")
    except _API_ERRORS as exc:
        print(f"::warning::could not react to the command: {type(exc).__name__}", flush=True)
    code_ = 0
    try:
        outcome = _act(ctx, repo, event, command, outlet, review_pull)
    except GatebotError as exc:
        code_ = exc.exit_code if isinstance(exc, (UsageError, InfrastructureError)) else 0
        outcome = Outcome(f"⚠️ The command did not complete: {exc.message}")
    except _API_ERRORS as exc:
        code_ = 3
        why = f"HTTP {exc.status}" if isinstance(exc, GithubException) else type(exc).__name__
        outcome = Outcome(f"⚠️ The command did not complete: the GitHub API failed ({why}).")
    try:
        outlet.reply(event.number, reply_text(event, command, outcome.text))
    except _API_ERRORS as exc:
        why = f"HTTP {exc.status}" if isinstance(exc, GithubException) else type(exc).__name__
        print(f"::error::gatebot could not reply to the command ({why})", flush=True)
        return code_ or 3
    return code_
