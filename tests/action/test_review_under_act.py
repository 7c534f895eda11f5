"""The review Action on a real Actions runner emulator (act, host mode), end to end.

The user's repository is what `gatebot init --action octo-org/gatebot@<sha>` writes, plus a
pull request; the Action is served as that pinned release, the third-party actions by the
stand-ins (tests/action/standins/). Each scenario asserts on what the loopback GitHub
received, on the step outputs the workflow saw and on what the stand-ins were given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from tests.action.harness import (
    GATEBOT_REPO,
    GATEBOT_SHA,
    ActHarness,
    ActResult,
    add_output_recorder,
)
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "fixtures" / "events"
CHECK = "gatebot / review"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
VERDICTS = {"pass", "fail", "neutral"}
EXIT_CODES = {"0", "1", "2", "3"}

pytestmark = pytest.mark.slow


class UserRepo:
    """octo-org/inf-trader: `gatebot init` on main, a pull request from feature/throttle."""

    def __init__(self, tmp: Path, *, with_inputs: dict[str, str] | None = None) -> None:
        self.rb = RepoBuilder(tmp / "inf-trader")
        self.path = self.rb.path
        done = CliRunner().invoke(
            cli, ["init", "--repo", str(self.path), "--action", f"{GATEBOT_REPO}@{GATEBOT_SHA}"]
        )
        assert done.exit_code == 0, done.output
        self.workflow = self.path / ".github" / "workflows" / "review.yml"
        add_output_recorder(self.workflow, "review", GATEBOT_REPO)
        if with_inputs:
            self.set_inputs(with_inputs)
        generated = {
            str(p.relative_to(self.path)): p.read_text()
            for p in (self.path / ".github").rglob("*")
            if p.is_file()
        }
        self.base = self.rb.commit(
            {
                **generated,
                "src/app.py": "def handler(x):\n    return x\n",
                "README.md": "# inf\n",
                # A PR-controlled file where the Action keeps its cache: it must never be read.
                ".gatebot-cache/planted.txt": "forged\n",
            },
            message="base",
        )
        self.head = self.rb.commit(
            {
                "src/app.py": "def handler(x):\n    return eval(x)\n",
                "deploy/id_ed25519": PRIVATE_KEY,
            },
            branch="feature/throttle",
            parents=[self.base],
            message="throttle",
        )
        self.rb.checkout("main")
        self.rb.repo.remotes.create("origin", "https://github.com/octo-org/inf-trader.git")

    def set_inputs(self, values: dict[str, str]) -> None:
        import yaml

        data = yaml.safe_load(self.workflow.read_text())
        gate = next(s for s in data["jobs"]["review"]["steps"] if s.get("id") == "gate")
        gate.setdefault("with", {}).update(values)
        self.workflow.write_text(yaml.safe_dump(data, sort_keys=False))

    def commit_workflow(self) -> None:
        self.base = self.rb.commit(
            {".github/workflows/review.yml": self.workflow.read_text()}, message="workflow"
        )
        self.rb.checkout("main")

    def pull_request(self, event: str = "pull_request_opened") -> dict[str, Any]:
        payload: dict[str, Any] = json.loads((EVENTS / f"{event}.json").read_text())
        payload["pull_request"]["base"]["sha"] = self.base
        payload["pull_request"]["head"]["sha"] = self.head
        return payload


def _outputs(result: ActResult, job: str = "review", workflow: str | None = None) -> dict[str, str]:
    outputs: dict[str, str] = result.gate(job, workflow)["outputs"]
    return outputs


def _assert_documented(outputs: dict[str, str]) -> None:
    assert outputs["verdict"] in VERDICTS, outputs
    assert outputs["exit-code"] in EXIT_CODES, outputs
    assert outputs["posted"] in {"check", "commands"}, outputs


def _only_completed(github: FakeGitHub, head: str) -> Any:
    runs = github.runs_for(head, CHECK)
    assert len(runs) == 1, [(r.status, r.conclusion) for r in runs]
    assert all(r.status == "completed" for r in github.runs.values())
    return runs[0]


def test_pull_request_then_the_same_pr_on_another_runner_restores_the_cache(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = UserRepo(tmp_path)
    payload = repo.pull_request()

    # -- first run: cold cache ---------------------------------------------------------------
    first = act.run(repo.path, repo.workflow, "pull_request", payload)
    assert first.returncode != 0, "a fail verdict must fail the job"
    out = _outputs(first)
    _assert_documented(out)
    assert (out["verdict"], out["exit-code"], out["posted"]) == ("fail", "1", "check"), out
    assert first.gate()["outcome"] == "failure"
    assert int(out["api-calls"]) >= 1 and float(out["cost-usd"]) >= 0
    report = json.loads(Path(out["report"]).read_text())
    assert (report["base_sha"], report["head_sha"]) == (repo.base, repo.head)

    run = _only_completed(github_server, repo.head)
    assert run.conclusion == "failure"
    levels = {(a["path"], a["annotation_level"]) for a in run.annotations}
    assert ("deploy/id_ed25519", "failure") in levels
    assert any(a["path"] == "src/app.py" for a in run.annotations)
    summary = first.summary()
    assert "gatebot review: **fail**" in summary and "deploy/id_ed25519" in summary
    assert gemini_server.api_key not in first.text()  # masked in what the log shows

    (checkout,) = first.standin("checkout")
    assert checkout["inputs"]["fetch-depth"] == "0"
    assert checkout["inputs"]["persist-credentials"] == "false"
    (setup,) = first.standin("setup-python")
    assert setup["inputs"]["update-environment"] == "false"
    (restore,) = first.standin("cache-restore")
    (save,) = first.standin("cache-save")
    # The path actions/cache versions the entry by: the same string on every runner.
    assert restore["inputs"]["path"] == save["inputs"]["path"]
    assert first.standin("setup-python")[0]["runner_temp"] not in restore["inputs"]["path"]
    assert restore["existing"] == {restore["inputs"]["path"]: []}, "the PR's planted file"
    assert restore["matched"] is None and save["outcome"] == "saved"
    assert save["inputs"]["key"] == restore["inputs"]["key"]
    keys = restore["inputs"]["restore-keys"].splitlines()
    assert keys and all(restore["inputs"]["key"].startswith(k) for k in keys)
    calls_after_first = gemini_server.stats.generate_calls
    assert calls_after_first >= 1

    # -- the same PR again, on a runner with another temp directory and workspace ------------
    second = act.run(repo.path, repo.workflow, "pull_request", payload)
    out2 = _outputs(second)
    _assert_documented(out2)
    (restore2,) = second.standin("cache-restore")
    assert restore2["runner_temp"] != restore["runner_temp"]
    assert restore2["workspace"] != restore["workspace"]
    assert restore2["version"] == restore["version"]
    assert restore2["matched"] == save["inputs"]["key"], "the first run's cache, by prefix"
    assert gemini_server.stats.generate_calls == calls_after_first, "0 model calls"
    assert out2["api-calls"] == "0" and float(out2["cache-hit-rate"]) == 1.0
    assert (out2["verdict"], out2["exit-code"]) == ("fail", "1")
    run = _only_completed(github_server, repo.head)  # the same check run, re-used
    assert run.conclusion == "failure"
    assert len(github_server.calls("POST", r"/check-runs$")) == 1
    (save2,) = second.standin("cache-save")
    assert save2["outcome"] == "saved" and save2["inputs"]["key"] != save["inputs"]["key"]
    assert re.search(r"-pr42-\d+-1$", save2["inputs"]["key"])


def test_a_stalled_model_ends_in_documented_outputs_and_a_completed_check(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = UserRepo(tmp_path, with_inputs={"timeout-minutes": "0.1"})
    gemini_server.fail("slow", times=-1, delay_s=120.0)  # the model never answers in time
    result = act.run(repo.path, repo.workflow, "pull_request", repo.pull_request())
    assert result.returncode != 0
    out = _outputs(result)
    _assert_documented(out)
    assert (out["verdict"], out["exit-code"], out["posted"]) == ("fail", "3", "check"), out
    assert out["api-calls"] == "" and out["cache-hit-rate"] == ""
    # Opened by the review; closed by the review itself on the time limit's SIGTERM
    # (bot/github/crash.py), or else by the shell step.
    run = _only_completed(github_server, repo.head)
    assert run.conclusion == "failure"
    assert run.summary is not None and "timed out after 0.1 minutes" in run.summary
    assert run.title is not None and run.title.startswith("gatebot did not finish")
    assert len(github_server.calls("POST", r"/check-runs$")) == 1
    assert "gatebot did not finish" in result.summary()
    assert gemini_server.stats.generate_calls >= 1


@pytest.mark.parametrize(
    ("inputs", "env", "title", "code"),
    [
        # actions/setup-python cannot provide the version: no Python at all
        ({"python-version": "2.7"}, {}, "gatebot setup failed", "3"),
        # it reports a Python that does not run: the install step must notice
        ({}, {"ACT_STANDIN_SETUP_PYTHON": "/nonexistent/bin/python3"}, "gatebot setup failed", "3"),
        # an input the configuration refuses (exit 2 before the review starts)
        ({"blocking-severity": "urgent"}, {}, "gatebot could not run", "2"),
        # a time limit that is not a number: refused before the review starts
        ({"timeout-minutes": "soon"}, {}, "gatebot could not run", "2"),
    ],
    ids=["setup-python-fails", "python-does-not-run", "bad-input", "bad-timeout"],
)
def test_a_failure_before_the_review_still_completes_the_check(
    tmp_path: Path,
    act: ActHarness,
    github_server: FakeGitHub,
    gemini_server: FakeGemini,
    inputs: dict[str, str],
    env: dict[str, str],
    title: str,
    code: str,
) -> None:
    repo = UserRepo(tmp_path, with_inputs=inputs)
    result = act.run(repo.path, repo.workflow, "pull_request", repo.pull_request(), env=env)
    assert result.returncode != 0
    out = _outputs(result)
    _assert_documented(out)
    assert (out["verdict"], out["exit-code"], out["posted"]) == ("fail", code, "check"), out
    assert out["report"] == ""
    run = _only_completed(github_server, repo.head)
    assert (run.conclusion, run.title) == ("failure", title)
    assert run.summary is not None and run.summary.startswith("Nothing was reviewed")
    assert run.details_url and run.details_url.endswith(f"/octo-org/inf-trader/actions/runs/{9001}")
    assert title in result.summary()
    assert gemini_server.stats.generate_calls == 0
    assert not github_server.calls("PATCH"), "no check run was opened before the failure"


def test_a_fork_pr_without_a_writable_token_fails_through_the_job(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = UserRepo(tmp_path)
    github_server.forbid_checks()
    act.secrets.pop("GEMINI_API_KEY")  # forks get no secrets
    result = act.run(
        repo.path, repo.workflow, "pull_request", repo.pull_request("pull_request_fork")
    )
    assert result.returncode != 0
    out = _outputs(result)
    _assert_documented(out)
    assert (out["verdict"], out["exit-code"], out["posted"]) == ("fail", "1", "commands"), out
    assert not github_server.runs
    files = {a.get("file") for a in result.annotations("error")}
    assert "deploy/id_ed25519" in files, result.annotations("error")
    assert "local reviewer" in result.summary() and "fork" in result.summary().lower()
    assert gemini_server.stats.generate_calls == 0


SECOND_WORKFLOW = "gatebot nightly"


def _second_workflow(repo: UserRepo) -> Path:
    """Another workflow with a job of the same id and check name, and a second job."""
    import yaml

    data = yaml.safe_load(repo.workflow.read_text())
    data["name"] = SECOND_WORKFLOW
    docs = yaml.safe_load(yaml.safe_dump(data["jobs"]["review"]))
    gate = next(s for s in docs["steps"] if s.get("id") == "gate")
    gate["with"]["check-name"] = "gatebot / docs"
    data["jobs"]["docs"] = docs
    path = repo.workflow.with_name("nightly.yml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_two_workflows_and_jobs_keep_their_caches_apart(
    tmp_path: Path, act: ActHarness, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    repo = UserRepo(tmp_path)
    _second_workflow(repo)
    workflows = repo.workflow.parent
    jobs = {("gatebot", "review"), (SECOND_WORKFLOW, "review"), (SECOND_WORKFLOW, "docs")}

    first = act.run(repo.path, workflows, "pull_request", repo.pull_request())
    saves = {(r["workflow"], r["job"]): r["inputs"]["key"] for r in first.standin("cache-save")}
    assert set(saves) == jobs, first.tail()
    assert len(set(saves.values())) == 3, "one key per workflow and job"
    restores = {(r["workflow"], r["job"]): r for r in first.standin("cache-restore")}
    for who, record in restores.items():
        assert record["matched"] is None
        prefixes = record["inputs"]["restore-keys"].splitlines()
        others = [k for w, k in saves.items() if w != who]
        assert not any(k.startswith(p) for p in prefixes for k in others), who
    for workflow, job in jobs:
        _assert_documented(_outputs(first, job, workflow))

    second = act.run(repo.path, workflows, "pull_request", repo.pull_request())
    for record in second.standin("cache-restore"):
        who = (record["workflow"], record["job"])
        assert record["matched"] == saves[who], f"{who} restored {record['matched']}"
    assert {c.name for c in github_server.runs.values()} == {CHECK, "gatebot / docs"}
    assert all(r.status == "completed" for r in github_server.runs.values())
