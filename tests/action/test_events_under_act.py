"""The Action driven by the PR-bot events under act (host mode), with GitHub's real payload
shapes: `issue_comment` (`/gatebot review` on a fork PR, from the commands workflow
`gatebot init` writes) and `merge_group` (the review workflow on the queue's group head),
checking what the loopback GitHub server received.

The repositories are tests/github/prworld.py's: a clone of the base repository whose `origin`
carries `refs/pull/N/head` like GitHub's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from tests.action.harness import GATEBOT_REPO, GATEBOT_SHA, ActHarness, add_output_recorder
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import NUMBER, REPO, PrWorld
from tests.gitrepo import RepoBuilder

pytestmark = pytest.mark.slow
CHECK = "gatebot / review"
HEAD = {"src/app.py": "import ast\n\n\ndef handler(x):\n    return eval(x)\n"}


def _base_files(tmp: Path) -> dict[str, str | bytes | None]:
    """What `gatebot init` writes (the review and commands workflows), with the recorder."""
    scratch = RepoBuilder(tmp / "init").path
    done = CliRunner().invoke(
        cli, ["init", "--repo", str(scratch), "--action", f"{GATEBOT_REPO}@{GATEBOT_SHA}"]
    )
    assert done.exit_code == 0, done.output
    workflows = scratch / ".github" / "workflows"
    add_output_recorder(workflows / "review.yml", "review", GATEBOT_REPO)
    add_output_recorder(workflows / "gatebot-commands.yml", "command", GATEBOT_REPO)
    files: dict[str, str | bytes | None] = {
        str(p.relative_to(scratch)): p.read_text()
        for p in (scratch / ".github").rglob("*")
        if p.is_file()
    }
    files.update({"src/app.py": "import ast\n\n\ndef handler(x):\n    return x\n"})
    files["README.md"] = "# inf\n"
    return files


def _world(tmp: Path, github: FakeGitHub, gemini: FakeGemini) -> PrWorld:
    world = PrWorld(tmp, github, gemini)
    world.open(_base_files(tmp), HEAD)
    return world


def _harness(act: ActHarness, github: FakeGitHub) -> ActHarness:
    act.env["GITHUB_SERVER_URL"] = github.server_url
    # act reads the repository from the `origin` remote, here a local bare repository.
    act.env["GITHUB_REPOSITORY"] = REPO
    return act


def test_a_review_comment_on_a_fork_pr_runs_the_action_and_completes_the_check(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    world = _world(tmp_path, github_server, gemini_server)
    github_server.pulls[NUMBER].head_repo = "mallory/inf-trader"
    github_server.grant("maintainer", "maintain")
    payload = world.comment("/gatebot review", "maintainer")
    workflow = world.rb.path / ".github" / "workflows" / "gatebot-commands.yml"
    result = _harness(act, github_server).run(
        world.rb.path,
        workflow,
        "issue_comment",
        payload,
        env={"ACT_STANDIN_CHECKOUT_SOURCE": str(world.origin)},  # GitHub: the base repository
    )
    gate = result.gate("command")
    # A fail verdict is on the check, not the command's job.
    assert gate["outcome"] == "success", result.tail(80)
    assert gate["outputs"]["verdict"] == "fail" and gate["outputs"]["exit-code"] == "0"
    (check,) = github_server.runs_for(world.head, CHECK)
    assert (check.status, check.conclusion) == ("completed", "failure") and check.annotations
    (reply,) = github_server.replies(NUMBER)
    assert f"**fail** on `{world.head[:12]}`" in reply["body"]
    assert "```suggestion" in github_server.threads(NUMBER)[0]["body"]
    # The PR's code is never checked out: the workspace stays on the base commit.
    assert gate["workspace_head"] == world.base
    (checkout,) = result.standin("checkout")
    assert checkout["inputs"]["persist-credentials"] == "false"


def test_a_merge_group_runs_the_action_and_checks_the_group_head(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    from tests.github.test_merge_queue import _queue

    world = _world(tmp_path, github_server, gemini_server)
    group_head, payload = _queue(world)  # checked out in world.rb.path: act's GITHUB_SHA
    workflow = world.rb.path / ".github" / "workflows" / "review.yml"
    result = _harness(act, github_server).run(world.rb.path, workflow, "merge_group", payload)
    gate = result.gate("review")
    assert gate["outcome"] == "failure", result.tail(80)
    assert gate["outputs"]["verdict"] == "fail" and gate["outputs"]["exit-code"] == "1"
    (check,) = github_server.runs.values()
    assert check.head_sha == group_head and check.conclusion == "failure"
    (restore,) = result.standin("cache-restore")
    assert "-main-" in restore["inputs"]["key"], "the queue's target branch scopes the cache"
