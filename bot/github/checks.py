"""The check-run outlet (PyGithub): one check run per head commit and name, never duplicates.

Flow: `begin()` finds the check run this name already has on the head commit (a re-run) or
creates one, `in_progress`; `complete()` appends annotations in requests of at most 50 while
still in progress and sends the conclusion with the last batch, so a required status never
turns green before every annotation is in. GitHub appends annotations on each update, so on a
re-run the annotations the check run already carries are not sent again.
Retries (5xx, secondary rate limits: 403 or 429) are PyGithub's GithubRetry, configured in
`client()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from github import Auth, Github, GithubException, GithubRetry
from github.CheckRun import CheckRun
from github.Repository import Repository
from urllib3 import BaseHTTPResponse, Retry

from bot.github.annotations import Annotation
from bot.github.limits import ANNOTATIONS_PER_REQUEST, CHECK_TEXT_LIMIT, truncate
from bot.inert import unicode_safe

# The conclusions gatebot sends (GitHub's REST API accepts these among others). A required
# status check is satisfied by success, neutral and skipped only: everything else blocks.
Conclusion = Literal["success", "failure", "neutral", "timed_out", "cancelled"]


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the API. Defaults are for github.com; tests shorten the waits."""

    base_url: str
    token: str
    retries: int = 5
    backoff_factor: float = 1.0  # urllib3 backoff: 0, 2, 4, 8 … seconds
    secondary_rate_wait: float = 60.0
    max_rate_limit_wait: float = 300.0
    seconds_between_writes: float | None = 1.0  # GitHub's advice against secondary limits
    timeout: int = 30


class _Retry(GithubRetry):
    """GithubRetry, also for a 429 without Retry-After: GitHub answers a secondary rate limit
    with 403 *or 429* ("Rate limits for the REST API") and says to wait at least a minute when
    no Retry-After comes; GithubRetry applies that wait to 403s only."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is None and response.status == 429:
            return min(self.secondary_rate_wait, self.retry_after_max)
        return seconds


def client(settings: ApiSettings) -> Github:
    retry = _Retry(
        total=settings.retries,
        backoff_factor=settings.backoff_factor,
        secondary_rate_wait=settings.secondary_rate_wait,
        max_rate_limit_wait=settings.max_rate_limit_wait,
        # urllib3 does not retry PATCH by default; the check-run updates are PATCHes. A PATCH
        # retried after a 5xx that GitHub did apply could append its annotations twice: a
        # lesser harm than a check run left in progress forever.
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"GET", "POST", "PATCH"},
        # 429 (GithubRetry adds 403 itself): retried with or without Retry-After. Its wait is
        # bounded like GithubRetry's own (urllib3's default is six hours), so a mistaken
        # header cannot hold the run, and its in-progress check, past the job's timeout.
        status_forcelist=[*range(500, 600), 429],
        retry_after_max=max(1, int(settings.max_rate_limit_wait)),
    )
    return Github(
        base_url=settings.base_url.rstrip("/"),
        auth=Auth.Token(settings.token),
        retry=retry,
        timeout=settings.timeout,
        seconds_between_requests=None,
        seconds_between_writes=settings.seconds_between_writes,
        lazy=True,  # no GET /repos/{o}/{r} round trip: every call we make names its URL
    )


def _annotation_body(a: Annotation) -> dict[str, str | int]:
    # JSON carries any text, except lone surrogates (a non-UTF-8 file name, a model's \ud800):
    # those are spelled out (bot/inert.py), so GitHub gets valid UTF-8.
    body: dict[str, str | int] = {
        "path": unicode_safe(a.path),
        "start_line": a.start_line,
        "end_line": a.end_line,
        "annotation_level": a.level,
        "message": unicode_safe(a.message[:64_000]),
        "title": unicode_safe(a.title[:255]),
    }
    return body


def _identity(path: str, start: int, end: int, level: str, message: str) -> tuple[Any, ...]:
    return (path, start, end, level, message)


def _annotation_key(a: Annotation) -> dict[str, Any]:
    """What `_identity` compares, as the annotation was sent (bot/github/checks.py body)."""
    body = _annotation_body(a)
    return {
        "path": body["path"],
        "start": a.start_line,
        "end": a.end_line,
        "level": a.level,
        "message": body["message"],
    }


@dataclass(frozen=True)
class CheckOutput:
    title: str
    summary: str
    text: str | None = None

    def body(self, annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
        where = "the job summary and the verdict.json report"
        out: dict[str, Any] = {
            "title": unicode_safe(" ".join(self.title.split()))[:255],
            "summary": truncate(unicode_safe(self.summary), CHECK_TEXT_LIMIT, where),
        }
        if self.text:
            out["text"] = truncate(unicode_safe(self.text), CHECK_TEXT_LIMIT, where)
        if annotations:
            out["annotations"] = [_annotation_body(a) for a in annotations]
        return out


class CheckRunPublisher:
    """Posts one named check run on one commit of one repository."""

    def __init__(self, repo: Repository, name: str, details_url: str | None = None) -> None:
        self._repo = repo
        self.name = name
        self._details_url = details_url
        self.run: CheckRun | None = None
        self.requests = 0  # create/update requests sent, for the report

    def find_existing(self, head_sha: str) -> CheckRun | None:
        runs = self._repo.get_commit(head_sha).get_check_runs(check_name=self.name, filter="latest")
        for run in runs:
            if run.name == self.name and run.head_sha == head_sha:
                return run
        return None

    def refresh(self) -> CheckRun:
        """The check run as GitHub has it now (another workflow may have changed it)."""
        assert self.run is not None
        self.run = self._repo.get_check_run(self.run.id)
        return self.run

    def begin(self, head_sha: str, output: CheckOutput) -> CheckRun:
        now = datetime.now(timezone.utc)
        existing = self.find_existing(head_sha)
        extra: dict[str, Any] = {}
        if self._details_url:
            extra["details_url"] = self._details_url
        if existing is not None:
            # Re-run on the same commit: reopen the same check run instead of adding a second.
            existing.edit(status="in_progress", started_at=now, output=output.body(), **extra)
            self.run = existing
        else:
            created = self._repo.create_check_run(
                name=self.name,
                head_sha=head_sha,
                status="in_progress",
                started_at=now,
                output=output.body(),
                **extra,
            )
            if not isinstance(created.id, int):
                # A 2xx/3xx that is not a check run (a redirect, a proxy's page): not opened.
                raise GithubException(502, {"message": "the API answered without a check run"})
            self.run = created
        self.requests += 1
        return self.run

    def _already_posted(self, run: CheckRun) -> set[tuple[Any, ...]]:
        if not run.output or not run.output.annotations_count:
            return set()
        return {
            _identity(a.path, a.start_line, a.end_line, a.annotation_level, a.message)
            for a in run.get_annotations()
        }

    def complete(
        self,
        head_sha: str,
        conclusion: Conclusion,
        output: CheckOutput,
        annotations: Sequence[Annotation],
    ) -> CheckRun:
        run = self.run
        if run is None:
            # start() could not reach the API (it never raises); try once more to open it.
            run = self.begin(head_sha, output)
        seen = self._already_posted(run)
        fresh = [a for a in annotations if _identity(**_annotation_key(a)) not in seen]
        batches = [
            fresh[i : i + ANNOTATIONS_PER_REQUEST]
            for i in range(0, len(fresh), ANNOTATIONS_PER_REQUEST)
        ] or [[]]
        for batch in batches[:-1]:
            run.edit(output=output.body(batch))
            self.requests += 1
        run.edit(
            status="completed",
            conclusion=conclusion,
            completed_at=datetime.now(timezone.utc),
            output=output.body(batches[-1]),
        )
        self.requests += 1
        return run
