"""The review gate as a pull request meets it, for the gate-integrity tests.

A `Gate` is one repository (real git, pygit2), a pull_request event for base...head, the
loopback GitHub (check runs as GitHub received them) and, when a test wants a model, the
loopback Gemini. `run()` starts `gatebot review` as the Action does (a subprocess inside an
Actions-like environment) and checks, every time, that nothing outside the cache directory
changed: the repository, its working tree and a sentinel directory beside it are
snapshotted (path, size, bytes) before and compared after. Outputs go to `out/` and the
runner's files to `runner/`, which are expected to change.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.fakes.github_checks import CheckRun
from tests.github.runner import parse_output_file
from tests.gitrepo import Content, RepoBuilder
from tests.security.harness import clean_env, run_gatebot

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
REPOSITORY = "octo-org/inf-trader"
CHECK = "gatebot / review"
RUN_ID = "31337"
# The workflow commands gatebot itself prints (bot/github/commands.py).
OUR_COMMANDS = frozenset({"add-mask", "error", "warning", "notice"})
_V2 = re.compile(r"^::([A-Za-z-]+)")


def snapshot(root: Path, skip: set[Path]) -> dict[str, str]:
    """Every file and link under `root` (minus `skip`): relative path → digest of its bytes."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def runner_commands(text: str) -> list[tuple[str, str]]:
    """(command, line) for every line the Actions runner would act on: `::cmd` at the start
    after blanks (v2), `##[cmd` anywhere (v1), as actions/runner ActionCommand parses them."""
    found = []
    for line in text.splitlines():
        m = _V2.match(line.lstrip())
        if m:
            found.append((m.group(1).lower(), line))
        for v1 in re.finditer(r"##\[([A-Za-z-]+)", line):
            found.append((v1.group(1).lower(), line))
    return found


@dataclass
class GateRun:
    proc: subprocess.CompletedProcess[str]
    out: Path
    github: FakeGitHub
    head: str

    rss_mb: float | None = None  # peak resident memory of the review (run(measure=True))

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def verdict(self) -> dict[str, Any]:
        return json.loads((self.out / "verdict.json").read_text("utf-8"))

    @property
    def check(self) -> CheckRun:
        """The gate's check run on the head, as the loopback GitHub holds it (exactly one)."""
        (run,) = self.github.runs_for(self.head, CHECK)
        return run

    def causes(self) -> dict[str, str]:
        return {
            f["path"]: f["not_reviewed"]["cause"]
            for f in self.verdict["files"]
            if f.get("not_reviewed")
        }

    def foreign_commands(self) -> list[str]:
        """Lines of stdout/stderr the runner would act on that gatebot did not mean to send."""
        return [
            line
            for cmd, line in runner_commands(self.proc.stdout + "\n" + self.proc.stderr)
            if cmd not in OUR_COMMANDS or not line.startswith("::")
        ]


@dataclass
class Gate:
    tmp: Path
    github: FakeGitHub
    gemini: FakeGemini | None = None
    repo: RepoBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.repo = RepoBuilder(self.tmp / "repo")
        self.cache = self.tmp / "cache"
        self.out = self.tmp / "out"
        self.runner = self.tmp / "runner"
        self.sentinel = self.tmp / "outside"
        self.sentinel.mkdir()
        (self.sentinel / "keep.txt").write_text("nothing may touch this\n")
        self.base: str | None = None

    def main(self, files: dict[str, Content], config: dict[str, Any] | None = None) -> str:
        """A commit on main; `config` becomes .github/gatebot.yml there (the base config)."""
        if config is not None:
            files = {**files, ".github/gatebot.yml": yaml.safe_dump(config)}
        self.base = self.repo.commit(files, message="main")
        return self.base

    def push(self, files: dict[str, Content], **kw: Any) -> str:
        """A commit on the PR branch (the first one branches off main)."""
        parents = None if self.repo.tip("pr") else [self.base]
        return self.repo.commit(files, branch="pr", parents=parents, message="pr", **kw)

    def _event(self, head: str, fork: bool) -> Path:
        name = "pull_request_fork.json" if fork else "pull_request_opened.json"
        payload = json.loads((EVENTS / name).read_text())
        payload["pull_request"]["base"]["sha"] = self.base
        payload["pull_request"]["head"]["sha"] = head
        event = self.tmp / "event.json"
        event.write_text(json.dumps(payload))
        return event

    def env(self, head: str, *, key: bool = True, fork: bool = False, **extra: str) -> dict:
        self.runner.mkdir(exist_ok=True)
        for name in ("step_summary.md", "output.txt"):
            (self.runner / name).write_text("")
        env = clean_env(
            GITHUB_ACTIONS="true",
            GITHUB_REPOSITORY=REPOSITORY,
            GITHUB_API_URL=self.github.url,
            GITHUB_SERVER_URL="https://github.invalid",
            GITHUB_TOKEN=self.github.token,
            GITHUB_EVENT_NAME="pull_request",
            GITHUB_EVENT_PATH=str(self._event(head, fork)),
            GITHUB_STEP_SUMMARY=str(self.runner / "step_summary.md"),
            GITHUB_OUTPUT=str(self.runner / "output.txt"),
            GITHUB_RUN_ID=RUN_ID,
        )
        if key and self.gemini is not None:
            env.update(GEMINI_API_KEY=self.gemini.api_key, GOOGLE_GEMINI_BASE_URL=self.gemini.url)
        env.update(extra)
        return env

    def prepare(self, head: str, *args: str, **extra: str) -> dict[str, str]:
        """The Action's "Prepare the review cache" step (`gatebot cache-key`, action.yml): its
        step outputs, among them `config`, the file the review step then passes as --config."""
        env = self.env(head, **extra)
        effective = self.runner / "gatebot" / "config.yml"
        cmd = ["cache-key", "--repo", str(self.repo.path), "--effective-config", str(effective)]
        proc = run_gatebot([*cmd, *args], env, self.tmp)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return parse_output_file(self.runner / "output.txt")

    def run(
        self,
        head: str,
        *,
        key: bool = True,
        fork: bool = False,
        timeout: float = 180,
        measure: bool = False,
        args: tuple[str, ...] = (),
        **extra: str,
    ) -> GateRun:
        """`gatebot review` as the Action runs it, with `args` after the usual ones."""
        env = self.env(head, key=key, fork=fork, **extra)
        skip = {self.cache, self.out, self.runner, self.tmp / "event.json", self.tmp / "rss"}
        before = snapshot(self.tmp, skip)
        cli = ("review", "--repo", str(self.repo.path), "--out", str(self.out))
        cli += ("--cache-dir", str(self.cache), *args)  # the last --cache-dir given counts
        if measure:
            rss = self.tmp / "rss"
            proc = subprocess.run(
                [sys.executable, "-m", "tests.security.measured", str(rss), *cli],
                env=env,
                cwd=self.tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        else:
            proc = run_gatebot(list(cli), env, self.tmp, timeout)
        after = snapshot(self.tmp, skip)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"files outside the cache changed: {changed[:20]}"
        peak = float((self.tmp / "rss").read_text()) if measure else None
        return GateRun(proc, self.out, self.github, head, peak)
