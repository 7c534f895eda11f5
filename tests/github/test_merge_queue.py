"""Merge queues: `merge_group.checks_requested` gets the gate's check on the group's head SHA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fakes import github_webhooks
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import REPO, PrWorld, git, read_outputs

BASE = {"src/app.py": "def handler(x):\n    return x\n", "README.md": "# inf\n"}
HEAD = {"src/app.py": "def handler(x):\n    return eval(x)\n"}


def _queue(world: PrWorld) -> tuple[str, dict]:
    """The merge queue's temporary branch: main plus the queued PR, merged."""
    world.fetch_head()
    ws = world.rb.path
    git(ws, "checkout", "-q", "-b", "gh-readonly-queue/main/pr-7", world.base)
    git(
        ws,
        "-c",
        "user.name=GitHub",
        "-c",
        "user.email=noreply@github.invalid",
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request #7",
        world.head,
    )
    group_head = git(ws, "rev-parse", "HEAD").strip()
    payload = github_webhooks.merge_group(repo=REPO, base_sha=world.base, head_sha=group_head)
    return group_head, payload


def test_the_check_lands_on_the_merge_groups_head_sha(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    world = PrWorld(tmp_path, github_server, gemini_server)
    world.open(BASE, HEAD)
    group_head, payload = _queue(world)
    # GitHub's real example: the payload's head_commit.id is another commit than head_sha.
    assert payload["merge_group"]["head_commit"]["id"] != group_head
    run = world.gatebot(world.env("merge_group", payload))
    assert run.code == 1, run.stderr[-3000:]
    (check,) = github_server.runs.values()
    assert check.head_sha == group_head and check.name == "gatebot / review"
    assert check.conclusion == "failure" and check.annotations
    assert run.verdict()["base_sha"] == world.base and run.verdict()["head_sha"] == group_head
    # No pull request in a merge group event: no review comments are attempted.
    assert github_server.reviews == {} and github_server.calls("GET", "/pulls/") == []


def test_the_cache_key_of_a_merge_group_reuses_the_target_branchs_caches(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    world = PrWorld(tmp_path, github_server, None)
    world.open(BASE, HEAD)
    _, payload = _queue(world)
    env = world.env("merge_group", payload)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "cache-key", "--repo", str(world.rb.path)],
        env={**env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    key, restore = lines[0], lines[1:]
    assert "-main-" in key and "-pr" not in key, key
    assert restore and all(r.startswith("restore-key: gatebot-") for r in restore), restore
    assert any(r.endswith("-main-") for r in restore), restore


def test_a_destroyed_merge_group_is_not_reviewed_and_posts_nothing(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    world = PrWorld(tmp_path, github_server, gemini_server)
    world.open(BASE, HEAD)
    group_head, _ = _queue(world)
    payload = github_webhooks.merge_group_destroyed(
        repo=REPO, base_sha=world.base, head_sha=group_head
    )
    env = world.env("merge_group", payload)
    run = world.gatebot(env)
    assert run.code == 0, run.stderr[-3000:]
    assert github_server.requests == [] and gemini_server.stats.calls == []
    outputs = read_outputs(env)
    assert (outputs["verdict"], outputs["exit-code"], outputs["posted"]) == ("none", "0", "none")
    assert "merge_group event other than `checks_requested`" in run.summary
