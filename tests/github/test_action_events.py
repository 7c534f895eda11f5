"""The composite action driven by the PR-bot events, step by step as the runner runs it:
`issue_comment` (`/gatebot review` on a fork PR) and `merge_group`, with GitHub's real payload
shapes, checking what the loopback GitHub server received."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.composite import ActionRun, CacheStore, CompositeRunner
from tests.github.prworld import NUMBER, PrWorld, git
from tests.github.test_action import _action_copy

BASE = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return x\n", "README.md": "# inf\n"}
HEAD = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return eval(x)\n"}


@pytest.fixture(scope="module")
def action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _action_copy(tmp_path_factory.mktemp("runner"))


def _run(world: PrWorld, action_dir: Path, event_name: str, payload: dict) -> ActionRun:
    env = world.env(event_name, payload)
    runner_temp = Path(env["GITHUB_STEP_SUMMARY"]).parent / "runner-temp"
    runner_temp.mkdir()
    env.update(
        PATH=os.environ["PATH"],
        CI="true",
        GITHUB_WORKSPACE=str(world.rb.path),
        GITHUB_REF_NAME="main",
        GITHUB_RUN_ATTEMPT="1",
        RUNNER_TEMP=str(runner_temp),
        PIP_NO_INDEX="1",
    )
    env.pop("GATEBOT_GITHUB_TOKEN")  # the action passes its github-token input
    env.pop("GEMINI_API_KEY")  # and its gemini-api-key input
    steps = runner_temp.parent / "steps"
    steps.mkdir()
    cache = CacheStore(world.tmp / "cache-store")
    runner = CompositeRunner(action_dir, world.rb.path, env, cache, steps, world.github.token)
    assert world.gemini is not None
    return runner.run({"gemini-api-key": world.gemini.api_key})


@pytest.mark.slow
def test_a_review_comment_on_a_fork_pr_runs_the_action_and_completes_the_check(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, action_dir: Path
) -> None:
    world = PrWorld(tmp_path, github_server, gemini_server)
    world.open(BASE, HEAD)
    github_server.pulls[NUMBER].head_repo = "mallory/inf-trader"
    github_server.grant("maintainer", "maintain")
    run = _run(world, action_dir, "issue_comment", world.comment("/gatebot review", "maintainer"))
    review = run.step("review")
    assert review.exit_code == 0, review.stderr[-3000:]
    assert run.steps[-1].exit_code == 0  # a fail verdict is on the check, not the command job
    (check,) = github_server.runs_for(world.head, "gatebot / review")
    assert check.conclusion == "failure" and check.annotations
    (reply,) = github_server.replies(NUMBER)
    assert f"**fail** on `{world.head[:12]}`" in reply["body"]
    assert "```suggestion" in github_server.threads(NUMBER)[0]["body"]
    assert git(world.rb.path, "rev-parse", "HEAD").strip() == world.base  # never checked out


@pytest.mark.slow
def test_a_merge_group_runs_the_action_and_checks_the_group_head(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, action_dir: Path
) -> None:
    from tests.github.test_merge_queue import _queue

    world = PrWorld(tmp_path, github_server, gemini_server)
    world.open(BASE, HEAD)
    group_head, payload = _queue(world)
    run = _run(world, action_dir, "merge_group", payload)
    review = run.step("review")
    assert review.exit_code == 0, review.stderr[-3000:]
    assert run.outputs["verdict"] == "fail" and run.steps[-1].exit_code == 1
    (check,) = github_server.runs.values()
    assert check.head_sha == group_head and check.conclusion == "failure"
