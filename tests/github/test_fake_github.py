"""The loopback GitHub server holds requests and payloads to GitHub's published descriptions."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import requests
from github import Auth, Github

from tests.fakes import github_webhooks, npm_pack
from tests.fakes.github import OPERATIONS, FakeGitHub
from tests.fakes.github_openapi import GHES_OLDEST, rest_description

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
REPO = "octo-org/inf-trader"
DIFF = """\
diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -1,3 +1,4 @@
 import os
+import sys
 x = 1
 y = 2
@@ -20,2 +21,3 @@ def f():
     a = 1
+    b = 2
     return a
"""


def _raw(fake: FakeGitHub, method: str, path: str, **kw: object) -> requests.Response:
    headers = {"Authorization": f"token {fake.token}", "Accept": "application/vnd.github+json"}
    return requests.request(method, fake.url + path, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("issue_comment", "octokit/issue_comment.created"),
        ("pull_request", "octokit/pull_request.synchronize"),
        ("merge_group", "octokit/merge_group.checks_requested"),
        ("pull_request", "pull_request_opened"),
        ("pull_request", "pull_request_synchronize"),
        ("pull_request", "pull_request_fork"),
    ],
)
def test_event_fixtures_are_payloads_github_sends(event: str, name: str) -> None:
    payload = json.loads((EVENTS / f"{name}.json").read_text())
    github_webhooks.validate(event, payload)
    broken = copy.deepcopy(payload)
    broken["repository"].pop("full_name")
    with pytest.raises(AssertionError, match="full_name"):
        github_webhooks.validate(event, broken)


def test_an_undocumented_request_fails_the_test(github_server: FakeGitHub) -> None:
    r = _raw(github_server, "POST", f"/repos/{REPO}/check-runs/approve", json={})
    assert r.status_code == 404
    (violation,) = github_server.take_violations()
    assert "is not an operation of GitHub's REST API" in violation


def test_a_documented_but_unserved_request_says_so(github_server: FakeGitHub) -> None:
    r = _raw(github_server, "GET", f"/repos/{REPO}/issues/7/comments")
    assert r.status_code == 404
    (violation,) = github_server.take_violations()
    assert "documented but the GitHub fake does not serve it" in violation


def test_parameters_and_bodies_are_checked(github_server: FakeGitHub) -> None:
    r = _raw(github_server, "GET", f"/repos/{REPO}/commits/abc/check-runs?filter=newest")
    assert r.status_code == 422
    r = _raw(github_server, "POST", f"/repos/{REPO}/check-runs", json={"head_sha": "abc"})
    assert r.status_code == 422
    r = _raw(
        github_server,
        "POST",
        f"/repos/{REPO}/issues/comments/1/reactions",
        json={"content": "thumbsup"},
    )
    assert r.status_code == 422
    problems = github_server.take_violations()
    assert len(problems) == 3
    assert "'newest' is not one of ['latest', 'all']" in problems[0]
    assert "'name' is a required property" in problems[1]
    assert "'thumbsup' is not one of" in problems[2]


def test_the_failing_fixture_names_every_violation() -> None:
    fake = FakeGitHub().start()
    _raw(fake, "DELETE", f"/repos/{REPO}/check-runs/1")
    with pytest.raises(AssertionError, match=r"(?s)1 request\(s\) .* DELETE /repos/octo-org"):
        fake.stop()


def test_review_comments_only_land_on_lines_of_the_diff(github_server: FakeGitHub) -> None:
    github_server.add_pull(7, head_sha="b" * 40, base_sha="a" * 40, diff=DIFF)
    path = f"/repos/{REPO}/pulls/7/reviews"
    ok = {
        "path": "app.py",
        "line": 22,
        "start_line": 21,
        "start_side": "RIGHT",
        "side": "RIGHT",
        "body": "x",
    }
    outside = {**ok, "line": 10, "start_line": 9}
    across = {**ok, "line": 21, "start_line": 3}
    for comment, status in ((outside, 422), (across, 422), (ok, 200)):
        body = {"commit_id": "b" * 40, "event": "COMMENT", "body": "r", "comments": [comment]}
        assert _raw(github_server, "POST", path, json=body).status_code == status
    assert github_server.take_violations() == []  # GitHub's own 422s, not off the description
    (thread,) = github_server.threads(7)
    assert (thread["start_line"], thread["line"]) == (21, 22)


def test_graphql_documents_are_checked_against_githubs_schema(github_server: FakeGitHub) -> None:
    gh = Github(base_url=github_server.url, auth=Auth.Token(github_server.token))
    github_server.add_pull(7, head_sha="b" * 40, base_sha="a" * 40, diff=DIFF)
    _, data = gh.requester.graphql_query(
        "query($o:String!,$n:String!,$p:Int!){repository(owner:$o,name:$n){pullRequest(number:$p)"
        "{reviewThreads(first:10){nodes{id isResolved}}}}}",
        {"o": "octo-org", "n": "inf-trader", "p": 7},
    )
    assert data["data"]["repository"]["pullRequest"]["reviewThreads"]["nodes"] == []
    with pytest.raises(Exception, match="resolvedAt"):
        gh.requester.graphql_query(
            'mutation{resolveReviewThread(input:{threadId:"x"}){thread{resolvedAt}}}', {}
        )
    (violation,) = github_server.take_violations()
    assert "Cannot query field 'resolvedAt'" in violation


def test_ghes_layout_is_served_and_checked_against_the_ghes_description() -> None:
    fake = FakeGitHub(ghes=True).start()
    try:
        gh = Github(base_url=fake.url, auth=Auth.Token(fake.token), lazy=True)
        assert fake.url.endswith("/api/v3")
        gh.get_repo(REPO).create_check_run(name="n", head_sha="c" * 40)
        fake.add_pull(7, head_sha="b" * 40, base_sha="a" * 40, diff=DIFF)
        gh.requester.graphql_query(
            'query{repository(owner:"octo-org",name:"inf-trader"){pullRequest(number:7){id}}}',
            {},
        )
        assert [r.path for r in fake.requests] == [f"/repos/{REPO}/check-runs", "/api/graphql"]
        assert fake.description.flavour == GHES_OLDEST
    finally:
        fake.stop()


def test_every_operation_the_fake_serves_exists_on_the_oldest_ghes() -> None:
    # docs/action.md states the GitHub Enterprise Server version these calls need.
    assert rest_description(OPERATIONS, GHES_OLDEST).operations == OPERATIONS


def test_a_package_that_does_not_match_its_pin_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEBOT_TEST_CACHE", str(tmp_path))
    forged = dataclasses.replace(npm_pack.GRAPHQL_SCHEMA, integrity="sha512-" + "A" * 86 + "==")
    with pytest.raises(npm_pack.PackageUnavailable, match="does not match the pinned"):
        npm_pack.fetch(forged)
    assert not (tmp_path / forged.folder).exists()


def test_the_merge_group_fixture_is_githubs_example_verbatim() -> None:
    examples = json.loads(
        npm_pack.member(npm_pack.WEBHOOK_EXAMPLES, "api.github.com/index.json").read_text()
    )
    (merge_group,) = [e for e in examples if e["name"] == "merge_group"]
    fixture = github_webhooks.fixture("merge_group.checks_requested")
    assert fixture == merge_group["examples"][0]
    assert fixture["merge_group"]["head_commit"]["id"] != fixture["merge_group"]["head_sha"]


def test_review_comments_are_read_past_the_first_page(github_server: FakeGitHub) -> None:
    # GitHub returns at most 100 per page: a PR with 250 review comments takes three pages,
    # and gatebot must see all of them (or it would post its own comments again).
    from bot.github.pulls import GitHubPulls

    github_server.add_pull(7, head_sha="b" * 40, base_sha="a" * 40, diff=DIFF)
    path = f"/repos/{REPO}/pulls/7/reviews"
    one = {"path": "app.py", "line": 22, "side": "RIGHT", "body": "x"}
    for _ in range(5):
        body = {"commit_id": "b" * 40, "event": "COMMENT", "body": "r", "comments": [one] * 50}
        assert _raw(github_server, "POST", path, json=body).status_code == 200
    gh = Github(base_url=github_server.url, auth=Auth.Token(github_server.token))
    comments = GitHubPulls(gh.requester, REPO).review_comments(7)
    assert len({c.id for c in comments}) == len(comments) == 250
    pages = [r.query["page"] for r in github_server.calls("GET", r"/pulls/7/comments$")]
    assert pages == [["1"], ["2"], ["3"]]
