"""`/gatebot approve [SHA]` from a PR comment, over the loopback GitHub server (PyGithub via
GITHUB_API_URL, every request checked against GitHub's REST description) with GitHub's real
`issue_comment.created` payload shape.

The gate runs as the Action runs it, without a model key (a fork PR's run: "not reviewed by a
model", which fails closed); the comment's job runs `gatebot review` on the issue_comment
event. What is asserted is what GitHub holds afterwards: the check run on each head, the one
reply, the reaction. A refusal leaves the check as it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.github.approval import parse_record
from tests.fakes.github import CheckRun, FakeGitHub
from tests.github.prworld import NUMBER, REPO, PrWorld, Run

CHECK = "gatebot / review"
AUTHOR = "octocat"
BASE = {"src/app.py": "def handler(x):\n    return x\n", "README.md": "# inf\n"}
HEAD = {"src/app.py": "def handler(x):\n    return x * 2\n"}
PULL = rf"/pulls/{NUMBER}$"


@pytest.fixture
def world(tmp_path: Path, github_server: FakeGitHub) -> PrWorld:
    w = PrWorld(tmp_path, github_server, None, author=AUTHOR)  # no model key: fails closed
    w.open(BASE, HEAD)
    github_server.grant("maintainer", "write")
    github_server.grant(AUTHOR, "admin")
    return w


def reviewed(world: PrWorld) -> CheckRun:
    """The gate's pull_request run on the current head: its check fails closed."""
    run = world.review()
    assert run.code == 1, run.stderr[-3000:]
    (check,) = world.github.runs_for(world.head, CHECK)
    assert check.status == "completed" and check.conclusion == "failure"
    assert "not reviewed" in (check.title or ""), check.title
    return check


def command(
    world: PrWorld,
    body: str,
    login: str = "maintainer",
    user_type: str = "User",
    written_ago: timedelta | None = None,
) -> tuple[Run, str]:
    """Comment `body` and run the comment's job; the run and gatebot's one reply."""
    before = len(world.github.replies(NUMBER))
    payload: dict[str, Any] = world.comment(body, login, user_type)
    if written_ago is not None:  # the comment's job started this long after it was written
        when = datetime.now(timezone.utc) - written_ago
        payload["comment"]["created_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = world.gatebot(world.env("issue_comment", payload))
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    replies = world.github.replies(NUMBER)
    assert len(replies) == before + 1, "exactly one reply per command"
    reactions = [
        r["content"] for r in world.github.reactions if r["comment"] == payload["comment"]["id"]
    ]
    assert reactions == ["eyes"]
    return run, str(replies[-1]["body"])


def unchanged(check: CheckRun, world: PrWorld) -> None:
    assert check.conclusion == "failure" and not check.external_id
    assert not (check.title or "").startswith("approved by")
    assert len(world.github.runs_for(check.head_sha, CHECK)) == 1


# --- a maintainer approves --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "named"),
    [("write", True), ("maintain", False), ("admin", True)],
    ids=["write-with-sha", "maintain-without-sha", "admin-with-sha"],
)
def test_a_maintainer_approves_a_head_the_gate_failed_closed_on(
    world: PrWorld, permission: str, named: bool
) -> None:
    world.github.grant("maintainer", permission)
    check = reviewed(world)
    head = world.head
    _, reply = command(world, f"/gatebot approve {head}" if named else "/gatebot approve")
    assert reply.startswith("> `/gatebot approve")
    assert f"✅ Approved by @maintainer for head `{head[:12]}`" in reply
    assert "[The check run](" in reply and "the check was failure; now success" in reply
    assert check.status == "completed" and check.conclusion == "success"
    assert (check.title or "").startswith("approved by @maintainer: ")
    assert "not reviewed" in (check.title or "")  # what the gate said stays visible
    assert (check.summary or "").startswith("> ✅ Approved by @maintainer for head")
    approval = parse_record(check.external_id, head)
    assert approval is not None
    assert (approval.approver, approval.sha, approval.via, approval.pr) == (
        "maintainer",
        head,
        "issue_comment",
        NUMBER,
    )
    assert approval.run_url is not None and approval.run_url.endswith("/actions/runs/1002")
    assert len(world.github.runs_for(head, CHECK)) == 1


def test_a_push_after_the_approval_is_not_covered_by_it(world: PrWorld) -> None:
    old = reviewed(world)
    approved = world.head
    _, reply = command(world, "/gatebot approve")
    assert "✅ Approved" in reply and old.conclusion == "success"
    newer = world.push({"src/app.py": "def handler(x):\n    return x * 3\n"})
    run = world.review()
    assert run.code == 1, run.stderr[-2000:]
    (check,) = world.github.runs_for(newer, CHECK)
    assert check.conclusion == "failure" and not check.external_id
    assert run.verdict().get("approval") is None
    assert old.conclusion == "success"  # the approved commit keeps its approval
    # … and naming the old commit does not carry it over either.
    _, reply = command(world, f"/gatebot approve {approved}")
    assert "🚫 Refused" in reply and "a newer commit was pushed" in reply
    unchanged(check, world)


# --- refusals: a clear reply, no check change -------------------------------------------------


@pytest.mark.parametrize(
    ("login", "user_type", "grant", "why"),
    [
        (AUTHOR, "User", None, "octocat wrote this pull request: its author cannot approve"),
        ("renovate[bot]", "Bot", "write", "commands from bots are not accepted"),
        (
            "reader",
            "User",
            "read",
            "`/gatebot approve` needs write access to this repository (you have read)",
        ),
        (
            "triager",
            "User",
            "triage",
            "`/gatebot approve` needs write access to this repository (you have read)",
        ),
        (
            "stranger",
            "User",
            None,
            "`/gatebot approve` needs write access to this repository (you have none)",
        ),
    ],
)
def test_who_may_not_approve(
    world: PrWorld, login: str, user_type: str, grant: str | None, why: str
) -> None:
    if grant is not None:
        world.github.grant(login, grant)
    check = reviewed(world)
    _, reply = command(world, f"/gatebot approve {world.head}", login=login, user_type=user_type)
    assert f"🚫 Refused: {why}" in reply, reply
    unchanged(check, world)


def test_a_closed_pull_request_is_not_approved(world: PrWorld) -> None:
    check = reviewed(world)
    world.github.pulls[NUMBER].state = "closed"
    _, reply = command(world, f"/gatebot approve {world.head}")
    assert "🚫 Refused: pull request #7 is closed" in reply
    unchanged(check, world)


@pytest.mark.parametrize(
    ("sha", "why"),
    [
        ("0" * 40, "a newer commit was pushed after the one you read"),
        ("{head12}", "is not a full commit SHA (40 hex digits)"),
        ("HEAD", "is not a full commit SHA (40 hex digits)"),
    ],
)
def test_an_approval_names_the_head_in_full(world: PrWorld, sha: str, why: str) -> None:
    check = reviewed(world)
    _, reply = command(world, "/gatebot approve " + sha.format(head12=world.head[:12]))
    assert "🚫 Refused" in reply and why in reply, reply
    unchanged(check, world)


def test_a_head_without_a_completed_check_is_not_approved(world: PrWorld) -> None:
    head = world.head
    # Not reviewed yet: nothing to read, so nothing to approve, SHA named or not.
    for body in (f"/gatebot approve {head}", "/gatebot approve"):
        _, reply = command(world, body)
        assert "🚫 Refused: gatebot has not finished reviewing" in reply, reply
        assert world.github.runs_for(head, CHECK) == []
    # Reviewing: the verdict is still to come (it could hold a committed key).
    owner, repo = REPO.split("/")
    running = CheckRun(world.github.next_id(), owner, repo, CHECK, head, status="in_progress")
    world.github.runs[running.id] = running
    _, reply = command(world, f"/gatebot approve {head}")
    assert "🚫 Refused: gatebot has not finished reviewing" in reply, reply
    assert running.status == "in_progress" and not running.external_id


def test_a_rerun_of_the_comments_job_approves_nothing(world: PrWorld) -> None:
    check = reviewed(world)
    payload = world.comment("/gatebot approve", "maintainer")
    run = world.gatebot({**world.env("issue_comment", payload), "GITHUB_RUN_ATTEMPT": "2"})
    assert run.code == 0, run.stderr[-2000:]
    (reply,) = world.github.replies(NUMBER)
    assert "🚫 Refused: this is a re-run" in reply["body"]
    assert f"/gatebot approve {world.head}" in reply["body"]
    unchanged(check, world)


# --- a push racing the approval ---------------------------------------------------------------


def test_a_push_landing_after_the_head_was_read_is_not_approved(world: PrWorld) -> None:
    # The job reads the pull request twice (the command's check, then the approval core's);
    # the push lands right after the core read the head: the approval stays bound to the
    # full SHA it read, on that commit's check run, never to the head at the time of writing.
    old = reviewed(world)
    read = world.head
    newer = world.commit_head({"src/app.py": "import os\nos.system('id')\n"})
    diff = world.diff()
    world.github.after("GET", PULL, lambda: world.github.push(NUMBER, newer, diff), skip=1)
    _, reply = command(world, f"/gatebot approve {read}")
    assert world.github.pulls[NUMBER].head_sha == newer  # the push did land mid-approval
    assert f"✅ Approved by @maintainer for head `{read[:12]}`" in reply
    approval = parse_record(old.external_id, read)
    assert approval is not None and approval.sha == read
    assert world.github.runs_for(newer, CHECK) == []  # nothing written on the new head
    run = world.review()
    assert run.code == 1 and run.verdict().get("approval") is None
    (check,) = world.github.runs_for(newer, CHECK)
    assert check.conclusion == "failure" and not check.external_id


def test_a_push_landing_before_the_head_was_read_is_refused(world: PrWorld) -> None:
    old = reviewed(world)
    read = world.head
    newer = world.commit_head({"src/app.py": "import os\nos.system('id')\n"})
    diff = world.diff()
    # Right after the command's own read of the pull request, before the approval core's.
    world.github.after("GET", PULL, lambda: world.github.push(NUMBER, newer, diff))
    _, reply = command(world, f"/gatebot approve {read}")
    assert "🚫 Refused" in reply and "a newer commit was pushed" in reply, reply
    unchanged(old, world)
    assert world.github.runs_for(newer, CHECK) == []


def test_approve_without_a_sha_never_approves_a_head_reviewed_after_the_comment(
    world: PrWorld,
) -> None:
    # The maintainer read the reviewed head and commented; before the comment's job started,
    # the author pushed and gatebot finished reviewing the new head. The head *now* has a
    # completed check, but one nobody could have read when the comment was written.
    old = reviewed(world)
    newer = world.push({"src/app.py": "import os\nos.system('id')\n"})
    new = reviewed(world)
    _, reply = command(world, "/gatebot approve", written_ago=timedelta(minutes=5))
    assert "🚫 Refused" in reply and "completed after your comment was written" in reply, reply
    assert f"/gatebot approve {newer}" in reply
    unchanged(new, world)
    unchanged(old, world)
