"""`/gatebot` PR comment commands, over the loopback GitHub server with GitHub's real
`issue_comment.created` payload shape: what GitHub received for each command and refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.fakes.github_pulls import BOT_LOGIN
from tests.github.prworld import NUMBER, PrWorld, git, read_outputs

BASE = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return x\n", "README.md": "# inf\n"}
HEAD = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return eval(x)\n", "NEW.md": "hi\n"}


@pytest.fixture
def world(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> PrWorld:
    w = PrWorld(tmp_path, github_server, gemini_server, author="octocat")
    w.open(BASE, HEAD)
    return w


def command(world: PrWorld, body: str, login: str = "maintainer", user_type: str = "User"):
    payload = world.comment(body, login, user_type)
    return world.gatebot(world.env("issue_comment", payload)), payload["comment"]["id"]


def reactions(world: PrWorld, comment_id: int) -> list[str]:
    return [r["content"] for r in world.github.reactions if r["comment"] == comment_id]


def test_help_answers_anyone_once(world: PrWorld) -> None:
    run, cid = command(world, "/gatebot help", login="passer-by")
    assert run.code == 0, run.stderr[-2000:]
    assert reactions(world, cid) == ["eyes"]
    (reply,) = world.github.replies(NUMBER)
    assert "| `/gatebot review` |" in reply["body"] and "@passer-by" in reply["body"]
    assert world.github.calls("GET", "/permission") == []


def test_a_command_that_reviews_nothing_says_so_in_the_outputs(world: PrWorld) -> None:
    # The action's last step maps verdict `none` to a passing step: `/gatebot help` (or a
    # comment that is no command) is not a failed job.
    env = world.env("issue_comment", world.comment("/gatebot help", "passer-by"))
    run = world.gatebot(env)
    assert run.code == 0, run.stderr[-2000:]
    outputs = read_outputs(env)
    assert (outputs["verdict"], outputs["exit-code"], outputs["posted"]) == ("none", "0", "none")
    assert world.github.runs == {}


def test_review_fetches_the_head_as_objects_and_completes_the_check_on_it(world: PrWorld) -> None:
    world.github.grant("maintainer", "write")
    before = git(world.rb.path, "rev-parse", "HEAD").strip()
    run, cid = command(world, "/gatebot review")
    assert run.code == 0, run.stderr[-3000:]
    # The PR's code was never checked out: HEAD and the working tree are the base's.
    assert git(world.rb.path, "rev-parse", "HEAD").strip() == before == world.base
    assert not (world.rb.path / "NEW.md").exists()
    assert git(world.rb.path, "status", "--porcelain") == ""
    (check,) = world.github.runs_for(world.head, "gatebot / review")
    assert check.status == "completed" and check.conclusion == "failure"
    assert reactions(world, cid) == ["eyes"]
    (reply,) = world.github.replies(NUMBER)
    assert f"❌ **fail** on `{world.head[:12]}`" in reply["body"]
    assert check.id and "[The check run](" in reply["body"]
    (thread,) = world.github.threads(NUMBER)  # the inline suggestion came with it
    assert "```suggestion" in thread["body"]


def test_review_of_a_fork_pr_runs_with_the_base_repositorys_key(world: PrWorld) -> None:
    world.github.pulls[NUMBER].head_repo = "mallory/inf-trader"
    world.github.grant("maintainer", "admin")
    run, _ = command(world, "/gatebot review")
    assert run.code == 0, run.stderr[-3000:]
    (check,) = world.github.runs_for(world.head, "gatebot / review")
    assert check.conclusion == "failure"
    assert world.gemini is not None and world.gemini.stats.generate_calls >= 1


@pytest.mark.parametrize(
    ("permission", "expected"),
    [("read", "you have read"), ("triage", "you have read"), (None, "you have none")],
)
def test_review_needs_write_permission_from_the_api(
    world: PrWorld, permission: str | None, expected: str
) -> None:
    if permission is not None:
        world.github.grant("outsider", permission)
    run, cid = command(world, "/gatebot review", login="outsider")
    assert run.code == 0
    (reply,) = world.github.replies(NUMBER)
    assert "🚫 Refused: `/gatebot review` needs write access" in reply["body"]
    assert expected in reply["body"]
    assert world.github.runs_for(world.head) == []
    assert reactions(world, cid) == ["eyes"]


def test_bots_are_refused_without_asking_for_their_permission(world: PrWorld) -> None:
    world.github.grant("renovate[bot]", "write")
    run, _ = command(world, "/gatebot review", login="renovate[bot]", user_type="Bot")
    assert run.code == 0
    (reply,) = world.github.replies(NUMBER)
    assert "commands from bots are not accepted" in reply["body"]
    assert world.github.calls("GET", "/permission") == []
    assert world.github.runs_for(world.head) == []


@pytest.mark.parametrize(
    ("body", "login", "user_type"),
    [
        ("I think `/gatebot review` would help here", "maintainer", "User"),
        ("looks good", "maintainer", "User"),
        ("> /gatebot approve\n\nWhy did the check fail?", "maintainer", "User"),
        ("    /gatebot approve\n\nis how you would approve it", "maintainer", "User"),
        ("```\n/gatebot approve\n```", "maintainer", "User"),
        ("/gatebot review\n<!-- gatebot:reply -->", "maintainer", "User"),
        ("/gatebot help", BOT_LOGIN, "Bot"),
    ],
)
def test_comments_that_are_not_commands_and_our_own_are_ignored(
    world: PrWorld, body: str, login: str, user_type: str
) -> None:
    run, cid = command(world, body, login=login, user_type=user_type)
    assert run.code == 0
    assert world.github.replies(NUMBER) == [] or login == BOT_LOGIN
    assert reactions(world, cid) == []
    assert [r for r in world.github.requests if r.method != "GET"] == []


def test_an_unknown_command_gets_the_help(world: PrWorld) -> None:
    run, _ = command(world, "  \n/GATEBOT deploy <script>x</script>")
    assert run.code == 0
    (reply,) = world.github.replies(NUMBER)
    assert "`deploy` is not a gatebot command" in reply["body"]
    assert "<script>" not in reply["body"]


def test_a_closed_pull_request_is_not_reviewed(world: PrWorld) -> None:
    world.github.grant("maintainer", "write")
    world.github.pulls[NUMBER].state = "closed"
    run, _ = command(world, "/gatebot review")
    assert run.code == 0
    (reply,) = world.github.replies(NUMBER)
    assert "pull request #7 is closed" in reply["body"]
    assert world.github.runs_for(world.head) == []


def test_a_reply_the_api_refuses_ends_the_job_with_a_clear_error(world: PrWorld) -> None:
    world.github.fail(
        "POST",
        r"/issues/\d+/comments$",
        403,
        times=5,
        message="Resource not accessible by integration",
    )
    run, cid = command(world, "/gatebot help")
    assert run.code == 3
    assert "::error::gatebot could not reply to the command (HTTP 403)" in run.stdout
    assert "Traceback" not in run.stderr
    assert reactions(world, cid) == ["eyes"]
