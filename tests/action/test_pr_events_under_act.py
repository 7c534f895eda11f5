"""The PR-bot events through the Action on act (host mode): a `/gatebot review` comment on a
fork PR (the `gatebot init` commands workflow) and a merge queue's `merge_group`, with GitHub's
real payload shapes, asserting on what the loopback GitHub received.

GitHub's side is a bare repository: `main`, and the PR head under `refs/pull/7/head` as GitHub
keeps it. The checkout stand-in clones it (branches only, like actions/checkout), so the PR's
commits reach the workspace only through gatebot's own fetch of the objects.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from tests.action.harness import GATEBOT_REPO, GATEBOT_SHA, ActHarness, add_output_recorder
from tests.fakes import github_webhooks
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.gitrepo import RepoBuilder

REPO = "octo-org/inf-trader"
NUMBER = 7
CHECK = "gatebot / review"

pytestmark = pytest.mark.slow


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


class QueuedRepo:
    """`gatebot init` on main, PR #7 from a fork that adds `eval(` (a fix the model offers)."""

    def __init__(self, tmp: Path, github: FakeGitHub) -> None:
        self.rb = RepoBuilder(tmp / "inf-trader")
        self.path = self.rb.path
        done = CliRunner().invoke(
            cli, ["init", "--repo", str(self.path), "--action", f"{GATEBOT_REPO}@{GATEBOT_SHA}"]
        )
        assert done.exit_code == 0, done.output
        workflows = self.path / ".github" / "workflows"
        self.review = workflows / "review.yml"
        self.commands = workflows / "gatebot-commands.yml"
        add_output_recorder(self.review, "review", GATEBOT_REPO)
        add_output_recorder(self.commands, "command", GATEBOT_REPO)
        generated = {
            str(p.relative_to(self.path)): p.read_text()
            for p in (self.path / ".github").rglob("*")
            if p.is_file()
        }
        code = "import ast\n\n\ndef handler(x):\n    return {}\n"
        self.base = self.rb.commit({**generated, "src/app.py": code.format("x")}, message="base")
        self.head = self.rb.commit(
            {"src/app.py": code.format("eval(x)")}, branch="fork/patch", parents=[self.base]
        )
        self.rb.checkout("main")
        # act names the repository after this remote; the runner clones GitHub's side below.
        self.rb.repo.remotes.create("origin", f"https://github.com/{REPO}.git")
        self.github_side = tmp / "github-side.git"
        _git(tmp, "init", "-q", "--bare", str(self.github_side))
        _git(self.path, "push", "-q", str(self.github_side), "main")
        _git(self.path, "push", "-q", str(self.github_side), f"{self.head}:refs/pull/{NUMBER}/head")
        diff = _git(self.github_side, "diff", f"{self.base}...{self.head}")
        github.add_pull(
            NUMBER,
            head_sha=self.head,
            base_sha=self.base,
            diff=diff,
            head_repo="mallory/inf-trader",
        )

    def env(self) -> dict[str, str]:
        return {"ACT_STANDIN_CHECKOUT_SOURCE": str(self.github_side)}


def test_a_review_comment_on_a_fork_pr_completes_the_check_on_its_head(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = QueuedRepo(tmp_path, github_server)
    github_server.grant("maintainer", "maintain")
    posted = github_server.comment(NUMBER, "/gatebot review", "maintainer")
    payload: dict[str, Any] = github_webhooks.issue_comment(
        repo=REPO,
        number=NUMBER,
        body="/gatebot review",
        login="maintainer",
        comment_id=posted["id"],
    )
    result = act.run(repo.path, repo.commands, "issue_comment", payload, env=repo.env())
    assert result.returncode == 0, result.tail()
    assert result.gate("command")["outcome"] == "success"
    (check,) = github_server.runs_for(repo.head, CHECK)
    assert check.status == "completed" and check.conclusion == "failure"
    assert any(a["path"] == "src/app.py" for a in check.annotations)
    (reply,) = github_server.replies(NUMBER)
    assert f"❌ **fail** on `{repo.head[:12]}`" in reply["body"]
    (thread,) = github_server.threads(NUMBER)
    assert "```suggestion\n    return ast.literal_eval(x)\n```" in thread["body"]
    assert [r["content"] for r in github_server.reactions] == ["eyes"]
    assert gemini_server.stats.generate_calls >= 1  # the base repository's key, on a fork PR
    (checkout,) = result.standin("checkout")
    assert checkout["inputs"]["ref"] == ""  # the default branch: never the PR's head


def test_a_merge_group_gets_the_check_on_its_head_sha(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = QueuedRepo(tmp_path, github_server)
    # The queue's temporary branch: main and the PR merged, pushed where GitHub keeps it.
    queue = f"gh-readonly-queue/main/pr-{NUMBER}-{repo.base}"
    _git(repo.path, "checkout", "-q", "-b", queue, repo.base)
    _git(
        repo.path,
        "-c",
        "user.name=GitHub",
        "-c",
        "user.email=noreply@github.invalid",
        "merge",
        "-q",
        "--no-ff",
        "-m",
        f"Merge pull request #{NUMBER}",
        repo.head,
    )
    group_head = _git(repo.path, "rev-parse", "HEAD").strip()
    _git(repo.path, "push", "-q", str(repo.github_side), f"HEAD:refs/heads/{queue}")
    payload = github_webhooks.merge_group(
        repo=REPO, base_sha=repo.base, head_sha=group_head, number=NUMBER
    )
    result = act.run(repo.path, repo.review, "merge_group", payload, env=repo.env())
    outputs = result.gate("review")["outputs"]
    assert (outputs["verdict"], outputs["exit-code"]) == ("fail", "1"), outputs
    (check,) = github_server.runs.values()
    assert check.head_sha == group_head and check.name == CHECK
    assert check.status == "completed" and check.conclusion == "failure"
    assert github_server.reviews == {}  # a merge group is not a pull request
