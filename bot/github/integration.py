"""GitHub Actions integration used by `gatebot review` (owned by the Action/check-run work).

Interface (binding for bot/cli/review.py):
- ActionsContext.from_env(env) -> ActionsContext | None   None unless GITHUB_ACTIONS == "true"
- ctx.resolve_range(base, head) -> (base, head)  from the event payload for pull_request(_target)
  and merge_group (the merge queue's group: the check goes on its head), else the given values
  (a UsageError when they are missing)
- ctx.start(head_sha)      create the check run in_progress (never raises: falls back silently to
                           workflow commands on 403 and remembers that)
- ctx.finish(verdict, summary_md, out_dir, *, cache_dir=None, metrics=None) -> int   complete the
                           check run / annotations / step summary / $GITHUB_OUTPUT; returns the
                           exit code the job should end with. With cache_dir, the run history's
                           alerts and trend charts top the step summary (bot/github/monitoring.py)
- ctx.abandon(head_sha, reason)  close a check run nothing finished, failing closed
                           (bot/github/abandon.py)
- ctx.approval(head_sha)   a maintainer's approval recorded meanwhile (bot/github/approval.py)

The environment is parsed once, into `ActionsSettings` (bot/github/settings.py).

Outlets, in order of preference: the check run (needs `checks: write`); workflow-command
annotations plus the job summary when the token may not write checks (fork PRs, read-only
tokens: HTTP 403) or posting is switched off. Whatever happens to the API, the verdict is in
the job summary and in DIR/verdict.json, and the exit code carries it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import requests
from github import GithubException
from github.Repository import Repository

from bot.config.env import GEMINI_KEYS, GITHUB_TOKENS
from bot.config.metrics import MetricsConfig
from bot.errors import UsageError
from bot.github.abandon import abandoned, close_check
from bot.github.annotations import annotations_for
from bot.github.approval import approval_on
from bot.github.checks import (
    ApiSettings,
    CheckOutput,
    CheckRunPublisher,
    Conclusion,
    client,
)
from bot.github.commands import add_mask, annotation_commands
from bot.github.event import (
    MERGE_GROUP,
    PR_EVENTS,
    PullRequestEvent,
    load_merge_group,
    load_pull_request,
)
from bot.github.limits import MAX_CHECK_ANNOTATIONS
from bot.github.monitoring import Monitoring, monitoring
from bot.github.outlet import ActionsOutlet
from bot.github.pulls import GitHubPulls
from bot.github.sarif import render_sarif
from bot.github.settings import ActionsSettings
from bot.github.summary import check_title, report_markdown
from bot.review.models import Approval, Verdict
from bot.review.summary import escape_md

SECRET_VARS = (*GITHUB_TOKENS, *GEMINI_KEYS)
# Statuses meaning "this token may not write check runs here": fall back, do not retry.
_NO_PERMISSION = frozenset({401, 403, 404})
_API_ERRORS = (GithubException, requests.RequestException, OSError)


def _describe(exc: Exception) -> str:
    """One line about a transport failure (urllib3 says e.g. "too many 500 error responses")."""
    reason = getattr(exc, "args", None)
    text = str(reason[0]) if reason else type(exc).__name__
    match = re.search(r"Caused by \w+\('([^']*)'", text)
    return f"{type(exc).__name__}: {match[1] if match else ' '.join(text.split())[:200]}"


def exit_code_for(verdict: Verdict) -> int:
    """0 when the check passes (success, or neutral where the config opted in), else 1."""
    return 0 if verdict.conclusion in ("success", "neutral") else 1


class ActionsContext:
    def __init__(
        self,
        settings: ActionsSettings,
        api: ApiSettings | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self._api = api
        self._stdout = stdout
        # The runner's files (job summary, step outputs) through the one Actions outlet.
        self.outlet = ActionsOutlet(
            in_actions=True,
            summary_path=settings.step_summary,
            output_path=settings.output,
            stdout=stdout,
        )
        self.pr: PullRequestEvent | None = None
        self.mode = "check"  # or "commands" once the check run is known to be out of reach
        self.notes: list[str] = []  # what happened to the delivery, for the job summary
        self._publisher: CheckRunPublisher | None = None
        self._head_sha: str | None = None
        self.skip: str | None = None  # set by resolve_range: why the event asks for no review
        self.delivered = False  # finish() delivered a verdict

    @property
    def api(self) -> ApiSettings | None:
        """How to reach the API (None without a token)."""
        return self._api

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionsContext | None:
        if env.get("GITHUB_ACTIONS", "").strip().lower() != "true":
            return None
        ctx = cls(ActionsSettings.parse(env))
        # Mask before anything else can print: a secret in a log line is a leaked secret.
        for name in SECRET_VARS:
            mask = add_mask(env.get(name, ""))
            if mask:
                ctx._print(mask)
        settings = ctx.settings
        if settings.token:
            ctx._api = ApiSettings(base_url=settings.api_url, token=settings.token)
        return ctx

    def check_url(self) -> str | None:
        """The posted check run's page, once finish() posted it."""
        run = self._publisher.run if self._publisher is not None else None
        return str(run.html_url) if run is not None and self.mode == "check" else None

    def repository(self) -> Repository:
        """The repository as PyGithub sees it (lazy: no request until a call needs one)."""
        if self._api is None or self.settings.repository is None:
            raise UsageError("GITHUB_REPOSITORY and a GitHub token are needed here")
        return client(self._api).get_repo(self.settings.repository)

    def pulls(self) -> GitHubPulls | None:
        """The pull-request outlet (review comments, replies), when a token is configured."""
        if self._api is None or self.settings.repository is None:
            return None
        return GitHubPulls(client(self._api).requester, self.settings.repository)

    def _print(self, line: str) -> None:
        print(line, file=self._stdout or sys.stdout, flush=True)

    # -- range ---------------------------------------------------------------------------

    def resolve_range(self, base: str | None, head: str | None) -> tuple[str, str]:
        s = self.settings
        if s.event_name in PR_EVENTS:
            if s.event_path is None:
                raise UsageError(f"GITHUB_EVENT_PATH is not set for a {s.event_name} event")
            self.pr = load_pull_request(s.event_name, s.event_path)
            self.skip = self.pr.skip_reason()
            # Explicit values win, so a workflow can review a narrower range on purpose.
            return base or self.pr.base_sha, head or self.pr.head_sha
        if s.event_name == MERGE_GROUP:
            if s.event_path is None:
                raise UsageError("GITHUB_EVENT_PATH is not set for a merge_group event")
            # A merge queue's temporary branch: the required check belongs on its head.
            group = load_merge_group(s.event_path)
            self.skip = group.skip_reason()
            return base or group.base_sha, head or group.head_sha
        if not base or not head:
            missing = " and ".join(n for n, v in (("--base", base), ("--head", head)) if not v)
            raise UsageError(
                f"{missing} required: the `{s.event_name or 'unknown'}` event carries no "
                "pull request to take them from",
                hint="set the action's `base` and `head` inputs for events other than pull_request",
            )
        return base, head

    # -- check run -----------------------------------------------------------------------

    def _fallback(self, reason: str) -> None:
        self.mode = "commands"
        self.notes.append(reason)

    def _no_permission_reason(self, status: int) -> str:
        why = f"the token may not write check runs (HTTP {status})"
        if self.pr is not None and self.pr.fork:
            why += "; this is a fork PR, whose token is read-only"
        return f"Check run not posted: {why}. Findings are shown as annotations and here."

    def start(self, head_sha: str) -> None:
        self._head_sha = head_sha
        s = self.settings
        if not s.post_check:
            self._fallback("Check run not posted: `post-check` is off.")
            return
        if self._api is None or s.repository is None:
            self._fallback("Check run not posted: no GitHub token or repository in the env.")
            return
        repo = client(self._api).get_repo(s.repository)
        self._publisher = CheckRunPublisher(repo, s.check_name, s.details_url())
        try:
            run = self._publisher.begin(
                head_sha,
                CheckOutput(
                    title="Review in progress",
                    summary=f"gatebot is reviewing `{head_sha[:12]}`.",
                ),
            )
            # At once, not at the end: when this process is killed (timeout) or crashes,
            # the action's shell step closes this run by id (action/close-check.sh).
            self.outlet.outputs({"check-run-id": str(run.id)})
        except GithubException as exc:
            if exc.status in _NO_PERMISSION:
                self._fallback(self._no_permission_reason(exc.status))
            else:
                # Transient: finish() tries again; the summary only reports the final outcome.
                self._print(f"::warning::check run not opened (HTTP {exc.status}); retrying later")
        except (requests.RequestException, OSError) as exc:
            self._print(f"::warning::check run not opened ({_describe(exc)}); retrying later")

    def _post_check(self, verdict: Verdict, output: CheckOutput) -> bool:
        assert self._publisher is not None
        annotations = annotations_for(verdict)
        try:
            run = self._publisher.complete(
                verdict.head_sha,
                verdict.conclusion,
                output,
                annotations[:MAX_CHECK_ANNOTATIONS],
            )
        except GithubException as exc:
            if exc.status in _NO_PERMISSION:
                self._fallback(self._no_permission_reason(exc.status))
            else:
                self._fallback(
                    f"Check run not completed: the GitHub API failed after retries (HTTP "
                    f"{exc.status}). The verdict stands here, in verdict.json and in the exit code."
                )
            return False
        except (requests.RequestException, OSError) as exc:
            self._fallback(
                f"Check run not completed: the GitHub API failed after retries "
                f"({escape_md(_describe(exc))}). The verdict stands here, in verdict.json "
                "and in the exit code."
            )
            return False
        name = escape_md(self.settings.check_name)
        self.notes.append(f"Check run [{name}]({run.html_url}) posted.")
        if len(annotations) > MAX_CHECK_ANNOTATIONS:
            self.notes.append(
                f"{len(annotations) - MAX_CHECK_ANNOTATIONS} findings beyond the first "
                f"{MAX_CHECK_ANNOTATIONS} are not annotated; they are in the findings above."
            )
        return True

    def abandon(
        self,
        head_sha: str,
        reason: str,
        conclusion: Conclusion = "failure",
        *,
        title: str | None = None,
    ) -> bool:
        """Close the check run a review left `in_progress` (killed, timed out, crashed), or
        post one when none was opened, so that a required status never waits forever
        (bot/github/abandon.py: fail closed, never neutral or green; a completed check run is
        left alone). The job summary says what happened. True when a check run was closed or
        posted."""
        s = self.settings
        log_link = s.details_url()
        closing = abandoned(reason, title, log_link)
        closed = False
        if s.post_check and self._api is not None and s.repository is not None:
            repo = client(self._api).get_repo(s.repository)
            try:
                closed = close_check(repo, s.check_name, head_sha, closing, conclusion, log_link)
            except _API_ERRORS as exc:
                self._print(f"::warning::could not close the check run: {type(exc).__name__}")
        self.outlet.summary(
            f"## ❌ {escape_md(closing.heading)}\n\n> {escape_md(closing.why)}\n"
            + (f"\nThe check run was closed as {conclusion}.\n" if closed else "")
        )
        return closed

    def approval(self, head_sha: str) -> Approval | None:
        """A maintainer's approval recorded on this head's check run since the review began
        (bot/github/approval.py), read fresh; None without a check run or an approval."""
        publisher = self._publisher
        if self.mode != "check" or publisher is None or publisher.run is None:
            return None
        try:
            run = publisher.refresh()
        except _API_ERRORS as exc:
            self._print(f"::warning::could not read the check run: {type(exc).__name__}")
            return None
        return approval_on(run, head_sha, self.pr.number if self.pr is not None else None)

    def nothing_to_review(self, why: str) -> None:
        """An event that asks for no verdict (a PR command other than review, an edit that kept
        the base): the outputs say `none` (the action's last step maps that to exit 0), and no
        check run is opened or touched, so nothing passes by it."""
        print(f"gatebot: {why}: no review, no check run", file=sys.stderr, flush=True)
        # `why` is gatebot's own text (bot/github/event.py), never the payload's.
        self.outlet.summary(f"gatebot: {why}: nothing was reviewed.\n")
        self.outlet.outputs({"verdict": "none", "exit-code": "0", "posted": "none"})

    # -- finish --------------------------------------------------------------------------

    def _reviewer_notes(self, verdict: Verdict) -> list[str]:
        if verdict.provider != "local":
            return []
        if self.pr is not None and self.pr.fork:
            return [
                "Fork PR: repository secrets are not given to workflows from forks, so the "
                "built-in local reviewer ran instead of Gemini."
            ]
        if verdict.degraded:
            return []  # the degraded reason already says why the local reviewer ran
        return ["No Gemini API key was set: the built-in local reviewer ran."]

    def finish(
        self,
        verdict: Verdict,
        summary_md: str,
        out_dir: Path,
        *,
        cache_dir: Path | None = None,
        metrics: MetricsConfig | None = None,
    ) -> int:
        """Deliver the verdict. With `cache_dir`, the run history's alerts and trend charts go
        to the top of the job summary (not the check run: its 65,535-character summary is
        the review's) and each firing alert becomes a `::warning::` line."""
        out_dir.mkdir(parents=True, exist_ok=True)
        report = out_dir / "verdict.json"
        if not report.exists():
            report.write_text(verdict.model_dump_json(indent=2) + "\n", encoding="utf-8")
        reviewer_notes = self._reviewer_notes(verdict)
        # The review's own summary.md (bot/review/summary.py) when there is one; the same
        # content rendered here otherwise. Notes on how it was delivered go at the end.
        output = CheckOutput(
            title=check_title(verdict),
            summary=report_markdown(verdict, summary_md, reviewer_notes),
        )
        posted = False
        if self.mode == "check" and self._publisher is not None:
            posted = self._post_check(verdict, output)
        annotations = annotations_for(verdict)
        if not posted and annotations:
            lines, omitted = annotation_commands(annotations)
            for line in lines:
                self._print(line)
            if omitted:
                self.notes.append(
                    f"The runner shows 10 annotations per level and step: {omitted} more "
                    "findings are only in the table above."
                )
        sarif_path = self.settings.sarif
        if sarif_path is not None:
            sarif_path.parent.mkdir(parents=True, exist_ok=True)
            sarif_path.write_text(render_sarif(verdict), encoding="utf-8")
        summary = report_markdown(verdict, summary_md, reviewer_notes + self.notes)
        watch = (
            monitoring(cache_dir, metrics or MetricsConfig())
            if cache_dir is not None
            else Monitoring()
        )
        for line in watch.commands:
            self._print(line)
        if watch.block:
            summary = f"{watch.block.rstrip()}\n\n{summary}"
        # A cut takes the end: the alerts at the top always survive it.
        self.outlet.summary(summary, full="verdict.json")
        code = exit_code_for(verdict)
        self.delivered = True
        if self.settings.output is not None:
            m = verdict.metrics
            values = {
                "verdict": verdict.verdict,
                "exit-code": str(code),
                "api-calls": str(m.api_calls),
                "cost-usd": f"{m.cost_usd:.6f}",
                "cache-hit-rate": f"{m.cache_hit_rate:.4f}",
                "report": str(report),
                "posted": "check" if posted else "commands",
            }
            if posted and self._publisher is not None and self._publisher.run is not None:
                values["check-run-id"] = str(self._publisher.run.id)
            if sarif_path is not None:
                values["sarif"] = str(sarif_path)
            self.outlet.outputs(values)
        return code
