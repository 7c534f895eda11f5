"""Doctor checks for GitHub: the token is there, it reaches the repository, it may write checks.

An Actions token's permissions cannot be listed through the REST API: the repository's
`permissions` field describes users, and the `X-Accepted-GitHub-Permissions` response header
names what an endpoint needs, not what the token holds. GitHub documents that a request with
insufficient permissions answers 403, so the faithful probe is the write itself: in Actions
the doctor posts one completed, neutral check run named "gatebot / doctor" on the workflow's
commit. Neutral never blocks a merge; a 403 here is exactly the 403 the review gate would get
when it posts its verdict.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import requests
from github import GithubException
from github.Repository import Repository

from bot.errors import UsageError
from bot.github.checks import ApiSettings, client
from bot.github.settings import ActionsSettings
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, failed, passed, skipped, warned

PROBE_CHECK_NAME = "gatebot / doctor"
_PERMISSIONS_FIX = "give the job `permissions: {contents: read, checks: write}` in the workflow"
_TRANSPORT = (requests.RequestException, OSError)


def _ms(start: float) -> float:
    return (time.monotonic() - start) * 1000


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("message") or exc)[:200]


def check_github(ctx: DoctorContext) -> list[CheckResult]:
    try:
        # The same reading of the environment as the review's check-run posting.
        actions = ActionsSettings.parse(ctx.env)
    except UsageError as exc:
        return [
            failed("github.token", "GitHub token", exc.message, "fix the variable named above"),
            skipped("github.checks", "GitHub checks permission", "environment invalid"),
        ]
    token, repo_name, api_url = actions.token, actions.repository, actions.api_url
    if not token:
        if ctx.in_actions:
            return [
                failed(
                    "github.token",
                    "GitHub token",
                    "neither GATEBOT_GITHUB_TOKEN nor GITHUB_TOKEN is set in this Actions step",
                    "add `env: {GITHUB_TOKEN: ${{ github.token }}}` to the step",
                ),
                skipped("github.checks", "GitHub checks permission", "no token"),
            ]
        return [
            skipped(
                "github.token",
                "GitHub token",
                "GITHUB_TOKEN not set: only needed in Actions, where the workflow provides it",
            ),
            skipped("github.checks", "GitHub checks permission", "not running in Actions"),
        ]
    if not repo_name:
        return [
            passed("github.token", "GitHub token", "GITHUB_TOKEN is set (value not shown)"),
            skipped("github.checks", "GitHub checks permission", "GITHUB_REPOSITORY not set"),
        ]
    settings = ApiSettings(
        base_url=api_url,
        token=token,
        retries=0,
        backoff_factor=0,
        secondary_rate_wait=0,
        max_rate_limit_wait=0,
        seconds_between_writes=None,
        timeout=max(int(ctx.timeout_s), 1),
    )
    gh = client(settings)
    t0 = time.monotonic()
    try:
        repo = gh.get_repo(repo_name).complete()  # the client is lazy: this is the GET
    except GithubException as exc:
        if exc.status == 401:
            detail, fix = "the token was rejected (401 Bad credentials)", "renew GITHUB_TOKEN"
        elif exc.status == 404:
            detail = f"{repo_name} not found, or not visible to this token"
            fix = "check GITHUB_REPOSITORY and that the token has access to the repository"
        else:
            detail, fix = f"HTTP {exc.status}: {_message(exc)}", f"check {api_url} and the token"
        return [
            failed("github.token", "GitHub token", detail, fix, _ms(t0)),
            skipped("github.checks", "GitHub checks permission", "the token does not work"),
        ]
    except _TRANSPORT as exc:
        return [
            failed(
                "github.token",
                "GitHub token",
                f"{api_url} unreachable within {ctx.timeout_s:g}s: {type(exc).__name__}",
                "check the network, or GITHUB_API_URL on GitHub Enterprise Server",
                _ms(t0),
            ),
            skipped("github.checks", "GitHub checks permission", "the API did not answer"),
        ]
    results = [
        passed("github.token", "GitHub token", f"reads {repo_name} (value not shown)", _ms(t0))
    ]
    sha = ctx.env.get("GITHUB_SHA")
    if not ctx.in_actions or not sha:
        results.append(
            skipped("github.checks", "GitHub checks permission", "probed only inside Actions")
        )
        return results
    results.append(_probe_checks_write(repo, sha, api_url))
    return results


def _probe_checks_write(repo: Repository, sha: str, api_url: str) -> CheckResult:
    title = "GitHub checks permission"
    t0 = time.monotonic()
    now = datetime.now(timezone.utc)
    try:
        repo.create_check_run(
            name=PROBE_CHECK_NAME,
            head_sha=sha,
            status="completed",
            conclusion="neutral",
            started_at=now,
            completed_at=now,
            output={"title": "gatebot doctor", "summary": "The token may write check runs."},
        )
    except GithubException as exc:
        if exc.status == 403:
            detail = f"the token may not write check runs: {_message(exc)}"
            return failed("github.checks", title, detail, _PERMISSIONS_FIX, _ms(t0))
        return warned(
            "github.checks",
            title,
            f"probe check run answered HTTP {exc.status}: {_message(exc)}",
            f"check {api_url}; the verdict falls back to workflow annotations",
            _ms(t0),
        )
    except _TRANSPORT as exc:
        return warned(
            "github.checks",
            title,
            f"probe did not complete: {type(exc).__name__}",
            "re-run the doctor; check the network to the API",
            _ms(t0),
        )
    detail = f"wrote check run '{PROBE_CHECK_NAME}' (neutral) on {sha[:7]}"
    return passed("github.checks", title, detail, _ms(t0))
