"""Which `pull_request` events the gate reviews, with GitHub's real payload shapes.

GitHub sends `edited` for a title or body edit and for a new base branch alike; only the new
base makes another diff of the same head commit (and GitHub sends no `synchronize` for it), so
only that one is reviewed. The workflow `gatebot init` writes skips the others before a runner
starts; gatebot itself also refuses to post anything for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bot.cli.main import cli
from tests.fakes import github_webhooks
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import NUMBER, REPO, PrWorld, read_outputs
from tests.gitrepo import RepoBuilder

BASE = {"src/app.py": "def handler(x):\n    return x\n", "README.md": "# inf\n"}
HEAD = {"src/app.py": "def handler(x):\n    return eval(x)\n"}


@pytest.fixture
def world(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> PrWorld:
    w = PrWorld(tmp_path, github_server, gemini_server)
    w.open(BASE, HEAD)
    return w


def _edited(world: PrWorld, changes: dict[str, Any]) -> dict[str, Any]:
    return github_webhooks.edited(
        repo=REPO, number=NUMBER, base_sha=world.base, head_sha=world.head, changes=changes
    )


def test_a_title_edit_reviews_nothing_and_posts_nothing(
    world: PrWorld, gemini_server: FakeGemini
) -> None:
    world.fetch_head()
    env = world.env("pull_request", _edited(world, {"title": {"from": "WIP"}}))
    run = world.gatebot(env)
    assert run.code == 0, run.stderr[-3000:]
    assert world.github.requests == [] and gemini_server.stats.calls == []
    outputs = read_outputs(env)
    assert (outputs["verdict"], outputs["exit-code"]) == ("none", "0")
    assert "did not change the base branch" in run.summary


def test_a_new_base_branch_is_reviewed_on_the_head(world: PrWorld) -> None:
    changes = {"base": {"ref": {"from": "develop"}, "sha": {"from": "d" * 40}}}
    run = world.review(_edited(world, changes))
    assert run.code == 1, run.stderr[-3000:]
    (check,) = world.github.runs_for(world.head, "gatebot / review")
    assert check.conclusion == "failure" and check.annotations
    assert run.verdict()["base_sha"] == world.base


def test_the_written_workflow_runs_on_a_new_base_but_not_on_other_edits(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "init").path
    done = CliRunner().invoke(cli, ["init", "--repo", str(repo)])
    assert done.exit_code == 0, done.output
    flow = yaml.safe_load((repo / ".github" / "workflows" / "review.yml").read_text())
    on = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert on["pull_request"]["types"] == [
        "opened",
        "synchronize",
        "reopened",
        "ready_for_review",
        "edited",
    ]
    job = flow["jobs"]["review"]
    assert job["if"] == "${{ github.event.action != 'edited' || github.event.changes.base }}"
    # A skipped edit must not cancel a running review: it gets a concurrency group of its own.
    assert "|| github.run_id }}" in flow["concurrency"]["group"]
    assert "github.event.changes.base" in flow["concurrency"]["group"]
