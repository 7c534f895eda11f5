"""The action files' plumbing rules, read statically (the behaviour runs under act beside this).

- inputs reach `run:` scripts only through `env:` (GATEBOT_ names), never `${{ }}` in a script;
- third-party actions are pinned by sha and get only inputs they declare (the stand-ins declare
  the real actions' inputs);
- the cache path handed to actions/cache is the prepared one, never an expression of the
  runner's temp directory or workspace (those differ between runners);
- every output comes from the last step, which always runs;
- what the actions build in their own directory or the workspace is git-ignored (`uses: ./`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pathspec
import pytest
import yaml

from bot.github.cachedir import DEFAULT_ACTION_CACHE_DIR
from tests.action.harness import STANDIN_DIRS

ROOT = Path(__file__).resolve().parents[2]
ACTION_FILES = [ROOT / "action.yml", *sorted(ROOT.glob("action/*/action.yml"))]
# Names the runner or a library defines; everything else an action step sets is ours.
FOREIGN_ENV = {"GEMINI_API_KEY"}


def _steps(path: Path) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load(path.read_text())["runs"]["steps"]
    return steps


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_run_steps_take_inputs_through_env_only(path: Path) -> None:
    for step in _steps(path):
        if "uses" in step:
            continue
        assert step["shell"] == "bash", step.get("name")
        assert "${{" not in step["run"], f"{step.get('name')}: an expression inside run:"
        assert step["run"].startswith("set -euo pipefail"), step.get("name")
        for name in step.get("env") or {}:
            assert name.startswith("GATEBOT_") or name in FOREIGN_ENV, (step.get("name"), name)


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pinned_actions_get_only_inputs_they_declare(path: Path) -> None:
    for step in _steps(path):
        if "uses" not in step or step["uses"].startswith("./"):
            continue
        name, _, ref = step["uses"].partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", ref), step["uses"]
        owner_repo = "/".join(name.split("/")[:2])
        subpath = "/".join(name.split("/")[2:])
        standin = STANDIN_DIRS[owner_repo] / subpath / "action.yml"
        declared = set(yaml.safe_load(standin.read_text())["inputs"])
        assert set(step.get("with") or {}) <= declared, step["uses"]


def test_the_cache_path_is_the_prepared_one_on_restore_and_save() -> None:
    steps = _steps(ROOT / "action.yml")
    cache_steps = [s for s in steps if s.get("uses", "").startswith("actions/cache/")]
    assert len(cache_steps) == 2
    for step in cache_steps:
        assert step["with"]["path"] == "${{ steps.prepare.outputs.path }}", step["name"]
    assert not any("runner.temp" in str(s.get("with")) for s in cache_steps)


def test_outputs_come_from_the_step_that_always_runs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    last = action["runs"]["steps"][-1]
    assert last["id"] == "result" and last["if"] == "${{ always() }}"
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.result.outputs.result-{name} }}}}", name
    closers = [s for s in action["runs"]["steps"] if "close-check.sh" in s.get("run", "")]
    assert {s["if"] for s in closers} == {"${{ !cancelled() }}", "${{ cancelled() }}"}


def test_action_local_build_output_is_git_ignored() -> None:
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".gitignore").read_text().splitlines())
    built: set[str] = {DEFAULT_ACTION_CACHE_DIR}
    for path in ACTION_FILES:
        text = path.read_text()
        built |= set(re.findall(r'"\$(?:GATEBOT_ACTION_PATH|root)/(\.[\w.-]+)"', text))
    assert {".venv", ".venv-deploy", ".gatebot-cache"} <= built
    for name in built:
        assert spec.match_file(f"{name}/bin/python"), f"{name}/ is not in .gitignore"


@pytest.mark.parametrize(
    ("status", "verdict", "code", "mapped"),
    [
        ("0", "none", 0, "none"),  # the event asked for no review: nothing to fail
        ("1", "fail", 1, "fail"),
        ("0", "", 3, "fail"),  # exit 0 without a verdict is not a pass: fail closed
        ("1", "none", 3, "fail"),  # `none` only with exit 0
    ],
)
def test_the_last_step_maps_the_reviews_outputs(
    tmp_path: Path, status: str, verdict: str, code: int, mapped: str
) -> None:
    import subprocess

    (step,) = [s for s in _steps(ROOT / "action.yml") if s.get("id") == "result"]
    output = tmp_path / "output.txt"
    env = {
        **dict.fromkeys(step["env"], ""),  # the runner sets each, empty when the step had none
        "PATH": "/usr/bin:/bin",
        "GITHUB_OUTPUT": str(output),
        "GATEBOT_STATUS": status,
        "GATEBOT_VERDICT": verdict,
        "GATEBOT_OUT_DIR": str(tmp_path / "out"),
    }
    done = subprocess.run(["bash", "-c", step["run"]], env=env, check=False)
    assert done.returncode == code
    assert f"result-verdict={mapped}\n" in output.read_text()
