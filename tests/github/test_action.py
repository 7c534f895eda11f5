"""The composite action, run step by step like the runner does, against loopback GitHub and Gemini.

Two runs of the same PR (the second a re-run) share the review cache only through the
emulated actions/cache restore/save steps, exactly as two jobs on GitHub would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.composite import ActionRun, CacheStore, CompositeRunner
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "fixtures" / "events"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def test_action_yml_shape() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = action["runs"]["steps"]
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        else:
            assert step["shell"] == "bash"
            assert "${{" not in step["run"]
            assert step["run"].startswith("set -euo pipefail")
    for name in ("verdict", "api-calls", "cost-usd", "cache-hit-rate", "report"):
        assert name in action["outputs"]
    assert action["inputs"]["check-name"]["default"] == "gatebot / review"
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"


def test_requirements_pin_every_runtime_dependency() -> None:
    import tomllib

    pins = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "action" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, version = dep.split("==")
        assert pins.get(name.lower().replace("_", "-")) == version, dep


@pytest.fixture(scope="module")
def action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _action_copy(tmp_path_factory.mktemp("runner"))


def _action_copy(tmp: Path) -> Path:
    """The action as the runner downloads it, with its venv already provisioned.

    The tests may not reach PyPI: the venv sees the already installed packages
    (--system-site-packages) and pip runs with PIP_NO_INDEX, so the real install step still
    runs and checks every pinned requirement is satisfied.
    """
    dest = tmp / "_actions" / "gatebot"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv")
    dest.mkdir(parents=True)
    for name in ("action.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("action", "bot"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", dest / ".venv"],
        check=True,
    )
    return dest


def _pr_repo(tmp: Path) -> tuple[Path, str, str]:
    rb = RepoBuilder(tmp / "workspace")
    base = rb.commit(
        {"src/app.py": "def handler(x):\n    return x\n", "README.md": "# inf\n"},
        message="base",
    )
    head = rb.commit(
        {
            "src/app.py": "def handler(x):\n    return eval(x)\n",
            "deploy/id_ed25519": PRIVATE_KEY,
        },
        branch="feature/throttle",
        parents=[base],
        message="throttle",
    )
    rb.checkout("main")
    return rb.path, base, head


def _event(tmp: Path, base: str, head: str, name: str = "pull_request_opened") -> Path:
    payload = json.loads((EVENTS / f"{name}.json").read_text())
    payload["pull_request"]["base"]["sha"] = base
    payload["pull_request"]["head"]["sha"] = head
    path = tmp / "event.json"
    path.write_text(json.dumps(payload))
    return path


def _runner_env(
    tmp: Path, workspace: Path, event: Path, github: FakeGitHub, gemini: FakeGemini, attempt: int
) -> dict[str, str]:
    runner_temp = tmp / f"runner-temp-{attempt}"
    runner_temp.mkdir()
    (tmp / "home").mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo-org/inf-trader",
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.invalid",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_RUN_ID": "777",
        "GITHUB_RUN_ATTEMPT": str(attempt),
        "GITHUB_REF_NAME": "42/merge",
        "RUNNER_TEMP": str(runner_temp),
        "PIP_NO_INDEX": "1",
        "GOOGLE_GEMINI_BASE_URL": gemini.url,
    }


def _run(
    tmp: Path,
    action_dir: Path,
    workspace: Path,
    env: dict[str, str],
    cache: CacheStore,
    github: FakeGitHub,
    inputs: dict[str, str],
) -> ActionRun:
    steps_dir = tmp / f"steps-{env['GITHUB_RUN_ATTEMPT']}"
    steps_dir.mkdir()
    runner = CompositeRunner(action_dir, workspace, env, cache, steps_dir, github.token)
    return runner.run(inputs)


@pytest.mark.slow
def test_review_rerun_posts_one_check_and_reuses_the_cache(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, action_dir: Path
) -> None:
    workspace, base, head = _pr_repo(tmp_path)
    event = _event(tmp_path, base, head)
    cache = CacheStore(tmp_path / "cache-store")
    inputs = {"gemini-api-key": gemini_server.api_key}

    # -- first run: cold cache -------------------------------------------------------------
    env1 = _runner_env(tmp_path, workspace, event, github_server, gemini_server, 1)
    first = _run(tmp_path, action_dir, workspace, env1, cache, github_server, inputs)
    review = first.step("review")
    assert review.ran, [(s.name, s.exit_code, s.stderr[-2000:]) for s in first.steps]
    assert review.exit_code == 0, review.stderr[-3000:]  # the step keeps the code for later
    assert first.steps[-1].exit_code == 1, "the final step must fail the job on a fail verdict"
    install = next(s for s in first.steps if s.name == "Install gatebot")
    # gatebot runs from the action's own files (the .pth the step writes), not the workspace.
    assert f"from {action_dir}/bot/__init__.py" in install.stdout, install.stdout + install.stderr
    assert first.outputs["verdict"] == "fail"
    assert first.outputs["exit-code"] == "1"
    assert first.outputs["posted"] == "check"
    assert int(first.outputs["api-calls"]) >= 1
    report = json.loads(Path(first.outputs["report"]).read_text())
    assert report["head_sha"] == head and report["base_sha"] == base
    assert f"::add-mask::{gemini_server.api_key}" in review.stdout
    assert gemini_server.api_key not in review.stderr
    assert "gatebot review: **fail**" in first.summary
    assert "deploy/id_ed25519" in first.summary

    (run,) = github_server.runs_for(head, "gatebot / review")
    assert run.conclusion == "failure"
    key_notes = [a for a in run.annotations if a["path"] == "deploy/id_ed25519"]
    assert key_notes and key_notes[0]["annotation_level"] == "failure"
    assert cache.restored == [None]
    assert len(cache.entries) == 1
    assert re.fullmatch(r"gatebot-v1-[0-9a-f]{16}-main-pr42-777-1", cache.entries[0])
    calls_after_first = gemini_server.stats.generate_calls

    # -- re-run of the same commit: warm cache through restore-keys, same check run --------
    env2 = _runner_env(tmp_path, workspace, event, github_server, gemini_server, 2)
    second = _run(tmp_path, action_dir, workspace, env2, cache, github_server, inputs)
    assert second.outputs["verdict"] == "fail"
    assert second.steps[-1].exit_code == 1
    assert cache.restored[-1] == cache.entries[0]  # the PR's own latest, by prefix
    assert gemini_server.stats.generate_calls == calls_after_first
    assert second.outputs["api-calls"] == "0"
    assert float(second.outputs["cache-hit-rate"]) == 1.0
    assert len(github_server.runs_for(head)) == 1
    assert len(github_server.calls("POST", "/check-runs$")) == 1
    (run,) = github_server.runs_for(head)
    assert run.conclusion == "failure"
    assert len(cache.entries) == 2 and cache.entries[1].endswith("-777-2")


@pytest.mark.slow
def test_fork_without_secrets_fails_through_the_exit_code(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, action_dir: Path
) -> None:
    workspace, base, head = _pr_repo(tmp_path)
    event = _event(tmp_path, base, head, "pull_request_fork")
    github_server.forbid_checks()
    env = _runner_env(tmp_path, workspace, event, github_server, gemini_server, 1)
    cache = CacheStore(tmp_path / "c")
    result = _run(tmp_path, action_dir, workspace, env, cache, github_server, {})
    assert result.outputs["verdict"] == "fail"
    assert result.outputs["posted"] == "commands"
    assert result.steps[-1].exit_code == 1
    review = result.step("review")
    assert "::error file=deploy/id_ed25519,line=1" in review.stdout
    assert "local reviewer ran" in result.summary and "fork PR" in result.summary
    assert gemini_server.stats.generate_calls == 0
    assert not github_server.runs


@pytest.mark.slow
def test_timeout_closes_the_check_as_failure(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, action_dir: Path
) -> None:
    workspace, base, head = _pr_repo(tmp_path)
    event = _event(tmp_path, base, head)
    gemini_server.fail("slow", times=-1, delay_s=60.0)  # the model never answers in time
    env = _runner_env(tmp_path, workspace, event, github_server, gemini_server, 1)
    inputs = {"gemini-api-key": gemini_server.api_key, "timeout-minutes": "0.3"}
    result = _run(
        tmp_path, action_dir, workspace, env, CacheStore(tmp_path / "c"), github_server, inputs
    )
    assert result.step("review").outputs["status"] == "124"
    close = next(s for s in result.steps if s.name == "Close an unfinished check run")
    assert close.ran and close.exit_code == 0, close.stderr[-2000:]
    assert "closed as failure" in close.stdout
    (run,) = github_server.runs_for(head)
    assert run.status == "completed" and run.conclusion == "failure"
    assert run.summary is not None and "timed out after 0.3 minutes" in run.summary
    assert "did not finish" in result.summary
    assert result.steps[-1].exit_code == 3
