"""A pull request as GitHub and the runner see it, for tests of the PR-bot features.

A real repository (the base repository's clone the workflow checked out) with an `origin`
bare repository that carries `refs/pull/N/head` like GitHub's; the loopback GitHub server
knowing the PR with the real `git diff` of merge-base...head (so review comments are held to
the lines GitHub accepts); webhook payloads derived from GitHub's real examples and validated
against GitHub's webhook description; and `gatebot` run as the runner runs it: a process with
the Actions environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import github_webhooks
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.gitrepo import Content, RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-org/inf-trader"
NUMBER = 7


def read_outputs(env: dict[str, str]) -> dict[str, str]:
    """The step outputs a run wrote to $GITHUB_OUTPUT (`name<<DELIMITER` blocks)."""
    text = Path(env["GITHUB_OUTPUT"]).read_text(encoding="utf-8")
    return {m[1]: m[3] for m in re.finditer(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, re.M | re.S)}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    summary: str
    out: Path

    def verdict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "verdict.json").read_text())
        return data


@dataclass
class PrWorld:
    tmp: Path
    github: FakeGitHub
    gemini: FakeGemini | None
    author: str = "octocat"
    rb: RepoBuilder = field(init=False)
    origin: Path = field(init=False)
    base: str = ""
    head: str = ""
    runs: int = 0

    def __post_init__(self) -> None:
        self.rb = RepoBuilder(self.tmp / "workspace")
        self.origin = self.tmp / "origin.git"

    # -- the repository ----------------------------------------------------------------------

    def open(self, base_files: dict[str, Content], head_files: dict[str, Content]) -> str:
        self.base = self.rb.commit(base_files, message="base")
        self.rb.checkout("main")
        git(self.tmp, "init", "-q", "--bare", str(self.origin))
        git(self.rb.path, "remote", "add", "origin", str(self.origin))
        git(self.rb.path, "push", "-q", "origin", "main")
        self.push(head_files, first=True)
        return self.head

    def push(self, files: dict[str, Content], *, first: bool = False) -> str:
        self.commit_head(files, first=first)
        diff = self.diff()
        if first:
            self.github.add_pull(
                NUMBER, head_sha=self.head, base_sha=self.base, diff=diff, author=self.author
            )
        else:
            self.github.push(NUMBER, self.head, diff)
        return self.head

    def commit_head(self, files: dict[str, Content], *, first: bool = False) -> str:
        """The git side of a push (the new head in `origin`), GitHub's API not told yet:
        `self.github.push(NUMBER, head, self.diff())` lands it there, when a test says."""
        parents = [self.base] if first else [self.head]
        self.head = self.rb.commit(files, branch="feature", parents=parents, message="change")
        git(self.rb.path, "push", "-q", "-f", "origin", f"{self.head}:refs/pull/{NUMBER}/head")
        # The runner's clone has the base branch only: the head is fetched when needed.
        git(self.rb.path, "update-ref", "-d", "refs/heads/feature")
        git(self.rb.path, "gc", "-q", "--prune=now")
        return self.head

    def diff(self) -> str:
        return git(self.origin, "diff", f"{self.base}...{self.head}")

    def fetch_head(self) -> None:
        """What a `pull_request` workflow's checkout does: the head's objects are present."""
        git(self.rb.path, "fetch", "-q", "origin", f"refs/pull/{NUMBER}/head")

    # -- events and runs ---------------------------------------------------------------------

    def pull_request(self, before: str | None = None) -> dict[str, Any]:
        return github_webhooks.synchronize(
            repo=REPO,
            number=NUMBER,
            base_sha=self.base,
            head_sha=self.head,
            before=before or self.base,
        )

    def comment(self, body: str, login: str, user_type: str = "User") -> dict[str, Any]:
        posted = self.github.comment(NUMBER, body, login, user_type)
        return github_webhooks.issue_comment(
            repo=REPO,
            number=NUMBER,
            body=body,
            login=login,
            user_type=user_type,
            comment_id=posted["id"],
            author=self.author,
            created_at=posted["created_at"],
        )

    def env(self, event_name: str, payload: dict[str, Any]) -> dict[str, str]:
        self.runs += 1
        run_dir = self.tmp / f"run-{self.runs}"
        run_dir.mkdir()
        event = run_dir / "event.json"
        event.write_text(json.dumps(payload))
        for name in ("summary.md", "output.txt"):
            (run_dir / name).touch()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.tmp),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_SERVER_URL": self.github.server_url,
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_STEP_SUMMARY": str(run_dir / "summary.md"),
            "GITHUB_OUTPUT": str(run_dir / "output.txt"),
            "GITHUB_RUN_ID": str(1000 + self.runs),
            "GATEBOT_GITHUB_TOKEN": self.github.token,
        }
        if self.gemini is not None:
            env["GOOGLE_GEMINI_BASE_URL"] = self.gemini.url
            env["GEMINI_API_KEY"] = self.gemini.api_key
        return env

    def gatebot(self, env: dict[str, str], *args: str) -> Run:
        out = Path(env["GITHUB_STEP_SUMMARY"]).parent / "out"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "review",
                "--repo",
                str(self.rb.path),
                "--out",
                str(out),
                "--cache-dir",
                str(self.tmp / "cache"),
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
        return Run(proc.returncode, proc.stdout, proc.stderr, summary, out)

    def review(self, payload: dict[str, Any] | None = None) -> Run:
        """A `pull_request` run: the checkout holds the head, the event names the range."""
        self.fetch_head()
        return self.gatebot(self.env("pull_request", payload or self.pull_request()))
