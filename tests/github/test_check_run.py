"""The check-run outlet against the loopback GitHub server, through PyGithub."""

from __future__ import annotations

import time

import pytest
import requests
from github import GithubException

from bot.github.annotations import annotations_for
from bot.github.checks import ApiSettings, CheckOutput, CheckRunPublisher, client
from bot.github.limits import CHECK_TEXT_LIMIT
from tests.fakes.github import SECONDARY_LIMIT_MESSAGE, FakeGitHub
from tests.github.verdicts import HEAD, verdict

NAME = "gatebot / review"


def publisher(server: FakeGitHub, **kw: object) -> CheckRunPublisher:
    fast: dict[str, object] = {
        "backoff_factor": 0.0,
        "secondary_rate_wait": 0.0,
        "seconds_between_writes": None,
    }
    settings = ApiSettings(base_url=server.url, token=server.token, **(fast | kw))  # type: ignore[arg-type]
    return CheckRunPublisher(client(settings).get_repo("octo-org/inf-trader"), NAME)


START = CheckOutput(title="Review in progress", summary="reviewing")


def test_begin_creates_in_progress(github_server: FakeGitHub) -> None:
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    (run,) = github_server.runs_for(HEAD, NAME)
    assert run.status == "in_progress" and run.conclusion is None
    (post,) = github_server.calls("POST", "/check-runs$")
    assert post.body["status"] == "in_progress"
    assert post.headers["Authorization"] == f"token {github_server.token}"


def test_120_findings_make_three_annotation_requests(github_server: FakeGitHub) -> None:
    v = verdict(120)
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    pub.complete(HEAD, "failure", CheckOutput("fail", "summary"), annotations_for(v))
    patches = github_server.calls("PATCH", "/check-runs/")
    assert [len(p.body["output"].get("annotations", [])) for p in patches] == [50, 50, 20]
    # Still in progress until the last batch, which carries the conclusion.
    assert "conclusion" not in patches[0].body and "conclusion" not in patches[1].body
    assert patches[2].body["status"] == "completed"
    assert patches[2].body["conclusion"] == "failure"
    (run,) = github_server.runs_for(HEAD, NAME)
    assert run.conclusion == "failure" and len(run.annotations) == 120
    assert run.annotations[0]["annotation_level"] == "failure"


def test_rerun_updates_the_same_check_without_duplicating(github_server: FakeGitHub) -> None:
    v = verdict(3)
    for _ in range(2):
        pub = publisher(github_server)
        pub.begin(HEAD, START)
        pub.complete(HEAD, "failure", CheckOutput("fail", "s"), annotations_for(v))
    runs = github_server.runs_for(HEAD, NAME)
    assert len(runs) == 1
    assert len(github_server.calls("POST", "/check-runs$")) == 1
    assert len(runs[0].annotations) == 3  # the second run did not append them again
    # The re-run looked the check run up by commit and name.
    listing = github_server.calls("GET", f"/commits/{HEAD}/check-runs")
    assert listing and listing[-1].query["check_name"] == [NAME]


def test_a_different_check_name_is_a_different_check(github_server: FakeGitHub) -> None:
    publisher(github_server).begin(HEAD, START)
    other = CheckRunPublisher(publisher(github_server)._repo, "other / check")
    other.begin(HEAD, START)
    assert len(github_server.runs_for(HEAD)) == 2


def test_summary_over_the_limit_is_truncated_not_rejected(github_server: FakeGitHub) -> None:
    huge = "\n".join(f"| `file_{i}.py` | reviewed | 0 | |" for i in range(5000))
    assert len(huge) > CHECK_TEXT_LIMIT
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    pub.complete(HEAD, "success", CheckOutput("ok", huge, text=huge), [])
    (run,) = github_server.runs_for(HEAD, NAME)
    assert run.conclusion == "success"
    assert run.summary is not None and len(run.summary) <= CHECK_TEXT_LIMIT
    assert "**Truncated:**" in run.summary
    assert run.text is not None and len(run.text) <= CHECK_TEXT_LIMIT


def test_the_fake_rejects_what_github_rejects(github_server: FakeGitHub) -> None:
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    assert pub.run is not None
    with pytest.raises(GithubException) as info:
        pub.run.edit(status="completed", conclusion="approved")
    assert info.value.status == 422
    (violation,) = github_server.take_violations()
    assert "conclusion: 'approved' is not one of" in violation


def test_5xx_is_retried(github_server: FakeGitHub) -> None:
    github_server.fail("POST", "/check-runs$", 502, times=2)
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    assert len(github_server.calls("POST", "/check-runs$")) == 3
    assert len(github_server.runs_for(HEAD, NAME)) == 1


def test_secondary_rate_limit_is_retried(github_server: FakeGitHub) -> None:
    pub = publisher(github_server)
    pub.begin(HEAD, START)
    github_server.secondary_rate_limit("PATCH", "/check-runs/")
    started = time.monotonic()
    pub.complete(HEAD, "success", CheckOutput("ok", "s"), [])
    assert time.monotonic() - started < 10
    assert len(github_server.calls("PATCH", "/check-runs/")) == 2
    (run,) = github_server.runs_for(HEAD, NAME)
    assert run.conclusion == "success"


def test_429_secondary_rate_limit_without_retry_after_is_retried(
    github_server: FakeGitHub,
) -> None:
    # GitHub may answer a secondary rate limit with 429 instead of 403, and without
    # retry-after ("wait for at least one minute": secondary_rate_wait, shortened here).
    pub = publisher(github_server, secondary_rate_wait=1.0)
    pub.begin(HEAD, START)
    github_server.fail(
        "PATCH",
        "/check-runs/",
        429,
        message=SECONDARY_LIMIT_MESSAGE,
        headers={"x-ratelimit-remaining": "4999"},
    )
    started = time.monotonic()
    pub.complete(HEAD, "failure", CheckOutput("fail", "s"), [])
    assert time.monotonic() - started >= 0.9  # it waited before trying again
    assert len(github_server.calls("PATCH", "/check-runs/")) == 2
    (run,) = github_server.runs_for(HEAD, NAME)
    assert run.status == "completed" and run.conclusion == "failure"


def test_a_429_retry_after_wait_is_bounded(github_server: FakeGitHub) -> None:
    github_server.fail("POST", "/check-runs$", 429, headers={"retry-after": "3600"})
    started = time.monotonic()
    publisher(github_server, max_rate_limit_wait=1.0).begin(HEAD, START)
    assert time.monotonic() - started < 10  # one second, not an hour
    assert len(github_server.calls("POST", "/check-runs$")) == 2
    assert github_server.runs_for(HEAD, NAME)[0].status == "in_progress"


def test_permission_403_is_not_retried(github_server: FakeGitHub) -> None:
    github_server.forbid_checks()
    with pytest.raises(GithubException) as info:
        publisher(github_server).begin(HEAD, START)
    assert info.value.status == 403
    assert len(github_server.calls("POST", "/check-runs$")) == 1


def test_5xx_gives_up_after_the_retry_budget(github_server: FakeGitHub) -> None:
    github_server.fail("POST", "/check-runs$", 500, times=100)
    with pytest.raises(requests.exceptions.RetryError, match="too many 500 error responses"):
        publisher(github_server, retries=2).begin(HEAD, START)
    assert len(github_server.calls("POST", "/check-runs$")) == 3
