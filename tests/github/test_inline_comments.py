"""Inline review comments with committable suggestions, over the loopback GitHub server.

Every request is checked against GitHub's REST description and GraphQL schema (the fake), the
events are GitHub's real payload shapes, and GitHub's rule that a review comment lands only on
a line of the PR diff is enforced by the fake with the real `git diff` of the PR.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import NUMBER, PrWorld

BASE = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return x\n", "README.md": "# inf\n"}
WITH_EVAL = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return eval(x)\n"}
FIXED = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return ast.literal_eval(x)\n"}


@pytest.fixture
def world(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> PrWorld:
    return PrWorld(tmp_path, github_server, gemini_server)


def test_a_fix_is_posted_once_as_a_committable_suggestion_and_resolved_when_fixed(
    world: PrWorld,
) -> None:
    gh = world.github
    head = world.open(BASE, WITH_EVAL)
    first = world.review()
    assert first.code == 1, first.stderr[-3000:]
    (review,) = gh.reviews.values()
    assert review["commit_id"] == head and review["event"] == "COMMENT"
    (thread,) = gh.threads(NUMBER)
    assert (thread["path"], thread["line"], thread["start_line"]) == ("src/app.py", 5, None)
    assert "```suggestion\n    return ast.literal_eval(x)\n```" in thread["body"]
    assert "Inline review: 1 new inline comment (1 with a committable suggestion)" in first.summary

    # The same head again (a re-run): nothing is posted twice.
    again = world.review()
    assert again.code == 1
    assert len(gh.reviews) == 1 and len(gh.threads(NUMBER)) == 1
    assert "1 already on the PR, not repeated" in again.summary

    # The author commits the suggestion: the thread is resolved, its text says why.
    fixed = world.push(FIXED)
    third = world.review(world.pull_request(before=head))
    assert third.code == 0, third.stderr[-3000:]
    assert len(gh.reviews) == 1
    (thread,) = gh.threads(NUMBER)
    assert thread["resolved"] is True
    assert thread["body"].startswith(f"✅ **Resolved**: no longer reported on `{fixed[:12]}`")
    assert "```suggestion" not in thread["body"]  # a stale fix cannot be committed any more
    assert "1 resolved (their finding is gone)" in third.summary
    mutations = [d for d in gh.graphql.documents if d["query"].lstrip().startswith("mutation")]
    assert len(mutations) == 1


def test_off_posts_nothing(world: PrWorld) -> None:
    gh = world.github
    world.open({**BASE, ".github/gatebot.yml": "review:\n  comments: off\n"}, WITH_EVAL)
    run = world.review()
    assert run.code == 1, run.stderr[-3000:]
    assert gh.reviews == {} and gh.calls("GET", r"/pulls/\d+/comments") == []
    (check,) = gh.runs_for(world.head)
    assert check.conclusion == "failure" and check.annotations


def test_findings_mode_comments_every_finding_and_adds_the_fixes(world: PrWorld) -> None:
    gh = world.github
    code = "import ast\n\n\ndef handler(x):\n    # FIXME-SECURITY: check x\n    return eval(x)\n"
    world.open(
        {**BASE, ".github/gatebot.yml": "review:\n  comments: findings\n"}, {"src/app.py": code}
    )
    run = world.review()
    assert run.code == 1, run.stderr[-3000:]
    first, second = sorted(gh.threads(NUMBER), key=lambda c: c["line"])
    assert first["line"] == 5 and "```suggestion" not in first["body"]
    assert (
        second["line"] == 6
        and "```suggestion\n    return ast.literal_eval(x)\n```" in (second["body"])
    )
    assert "2 new inline comments (1 with a committable suggestion)" in run.summary


def test_a_comment_github_refuses_does_not_lose_the_others(world: PrWorld) -> None:
    # GitHub's diff can differ from ours (whitespace, renames, a file too large to render):
    # it then answers 422 for the whole review because of one comment's line.
    gh = world.github
    code = "import ast\n\n\ndef handler(x):\n    # FIXME-SECURITY: check x\n    return eval(x)\n"
    world.open(
        {**BASE, ".github/gatebot.yml": "review:\n  comments: findings\n"}, {"src/app.py": code}
    )
    gh.pulls[NUMBER].diff["src/app.py"] = [(6, 6)]  # line 5 is not in GitHub's diff
    run = world.review()
    assert run.code == 1, run.stderr[-3000:]
    (thread,) = gh.threads(NUMBER)
    assert thread["line"] == 6 and "```suggestion" in thread["body"]
    assert len(gh.reviews) == 1  # the refused comment cost no empty review
    # All, then each half: the one refused comment alone, the other posted.
    assert len(gh.calls("POST", r"/pulls/\d+/reviews$")) == 3
    assert "1 new inline comment (1 with a committable suggestion)" in run.summary
    assert "GitHub refused 1 comment (HTTP 422" in run.summary
    (check,) = gh.runs_for(world.head)
    assert check.conclusion == "failure" and len(check.annotations) == 2
    assert gh.take_violations() == []  # GitHub's own 422, not a request off the description


def test_a_fork_pr_gets_no_inline_comments_and_says_why(world: PrWorld) -> None:
    world.open(BASE, WITH_EVAL)
    payload = world.pull_request()
    head_repo = payload["pull_request"]["head"]["repo"]
    head_repo.update(full_name="mallory/inf-trader", id=99, fork=True)
    run = world.review(payload)
    assert run.code == 1, run.stderr[-3000:]
    assert world.github.reviews == {}
    assert "Inline comments are off on fork PRs" in run.summary
