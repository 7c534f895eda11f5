"""GitHub Enterprise Server: every call through GITHUB_API_URL (`/api/v3`, GraphQL at
`/api/graphql`) and every link through GITHUB_SERVER_URL, each request checked against the
GHES description (the oldest release in the pinned package)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.fakes.github_openapi import GHES_OLDEST
from tests.github.prworld import NUMBER, PrWorld

BASE = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return x\n"}
EVAL = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return eval(x)\n"}
FIXED = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return ast.literal_eval(x)\n"}


@pytest.fixture
def ghes() -> Iterator[FakeGitHub]:
    server = FakeGitHub(ghes=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_review_comments_and_commands_on_ghes(
    tmp_path: Path, ghes: FakeGitHub, gemini_server: FakeGemini
) -> None:
    assert ghes.description.flavour == GHES_OLDEST
    world = PrWorld(tmp_path, ghes, gemini_server)
    first = world.open(BASE, EVAL)
    run = world.review()
    assert run.code == 1, run.stderr[-3000:]
    (check,) = ghes.runs_for(first)
    assert check.conclusion == "failure"
    assert check.details_url == f"{ghes.root}/octo-org/inf-trader/actions/runs/1001"
    assert f"Check run [gatebot / review]({ghes.root}/octo-org/inf-trader/runs/" in run.summary
    world.push(FIXED)
    assert world.review(world.pull_request(before=first)).code == 0
    (thread,) = ghes.threads(NUMBER)
    assert thread["resolved"] is True  # resolved through /api/graphql
    ghes.grant("maintainer", "write")
    payload = world.comment("/gatebot help", "maintainer")
    assert world.gatebot(world.env("issue_comment", payload)).code == 0
    assert len(ghes.replies(NUMBER)) == 1
    paths = {r.path for r in ghes.requests}
    assert "/api/graphql" in paths and all(not p.startswith("/api/v3") for p in paths)
