"""Workflows and action files: pinned, least privilege, no credentials left behind, no injection.

The structural rules below are what docs/security.md promises; zizmor and check-jsonschema run
over the same files so a rule we forgot here is still caught by the maintained audits. Each rule
is also run against a deliberately bad workflow, so a rule that silently stopped matching fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTIONS = sorted([*ROOT.glob("action.y*ml"), *ROOT.glob("action/*/action.y*ml")])
ALL_FILES = WORKFLOWS + ACTIONS

FULL_SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
DOCKER_DIGEST = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
# The head of a PR is attacker-controlled; under pull_request_target it must never be checked out.
PR_HEAD_REF = re.compile(r"pull_request\.head\.|github\.head_ref|pull_request\.merge|refs/pull/")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def _is_action(path: Path) -> bool:
    return path.name in ("action.yml", "action.yaml")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{_rel(path)}: top level must be a mapping"
    # PyYAML (YAML 1.1) reads the key `on` as the boolean True; put it back.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow.get("on")
    if isinstance(on, str):
        return {on}
    if isinstance(on, list | dict):
        return {str(t) for t in on}
    return set()


def _steps(path: Path, doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of a workflow's jobs or of a composite action."""
    if _is_action(path):
        for i, step in enumerate((doc.get("runs") or {}).get("steps") or []):
            yield f"{_rel(path)}: runs.steps[{i}]", step
        return
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            yield f"{_rel(path)}: jobs.{job_id}.steps[{i}]", step


def _uses(path: Path, doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for where, step in _steps(path, doc):
        if "uses" in step:
            yield where, str(step["uses"])
    if not _is_action(path):
        for job_id, job in (doc.get("jobs") or {}).items():
            if "uses" in job:  # a reusable workflow
                yield f"{_rel(path)}: jobs.{job_id}", str(job["uses"])


def _is_checkout(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).split("@")[0] == "actions/checkout"


# ---- the rules: each returns the offending locations -------------------------------------------


def unpinned_uses(path: Path, doc: dict[str, Any]) -> list[str]:
    return [
        f"{where}: {ref}"
        for where, ref in _uses(path, doc)
        if not (ref.startswith("./") or FULL_SHA.match(ref) or DOCKER_DIGEST.match(ref))
    ]


def jobs_without_permissions(path: Path, doc: dict[str, Any]) -> list[str]:
    if _is_action(path) or "permissions" in doc:
        return []
    jobs = doc.get("jobs") or {}
    return [
        f"{_rel(path)}: jobs.{job_id}" for job_id, job in jobs.items() if "permissions" not in job
    ]


def persisted_checkouts(path: Path, doc: dict[str, Any]) -> list[str]:
    return [
        where
        for where, step in _steps(path, doc)
        if _is_checkout(step)
        and str((step.get("with") or {}).get("persist-credentials")).lower() != "false"
    ]


def expressions_in_scripts(path: Path, doc: dict[str, Any]) -> list[str]:
    # `${{ … }}` in a script is pasted into the shell source before it runs: template injection.
    return [where for where, step in _steps(path, doc) if "${{" in str(step.get("run", ""))]


def pr_target_runs_pr_code(path: Path, doc: dict[str, Any]) -> list[str]:
    # Both run with the base repository's secrets and a write token whatever the PR contains.
    if _is_action(path) or not {"pull_request_target", "issue_comment"} & _triggers(doc):
        return []
    bad = []
    for where, step in _steps(path, doc):
        with_ = step.get("with") or {}
        if _is_checkout(step) and (
            PR_HEAD_REF.search(str(with_.get("ref", "")))
            or PR_HEAD_REF.search(str(with_.get("repository", "")))
        ):
            bad.append(where)
    return bad


RULES: dict[str, Callable[[Path, dict[str, Any]], list[str]]] = {
    "every uses: pinned by a 40-hex commit sha": unpinned_uses,
    "permissions declared for every job": jobs_without_permissions,
    "actions/checkout with persist-credentials: false": persisted_checkouts,
    "no ${{ }} inside run: scripts (use env:)": expressions_in_scripts,
    "pull_request_target / issue_comment never check out the PR head": pr_target_runs_pr_code,
}

BAD_WORKFLOW = """\
on: pull_request_target
jobs:
  review:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
  reuse:
    uses: octo/wf/.github/workflows/x.yml@main
"""


def test_the_product_ships_its_workflows_and_action() -> None:
    # DESIGN §2: the composite review Action and the CI/review/deploy workflows are the product.
    assert (ROOT / "action.yml").exists(), "action.yml (the review gate Action) is missing"
    assert WORKFLOWS, ".github/workflows/ has no workflow files"


@pytest.mark.parametrize("rule", list(RULES), ids=list(RULES))
def test_each_rule_catches_a_bad_workflow(rule: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD_WORKFLOW)
    assert RULES[rule](path, _load(path)), f"rule {rule!r} did not flag the bad workflow"


@pytest.mark.parametrize("rule", list(RULES), ids=list(RULES))
@pytest.mark.parametrize("path", ALL_FILES, ids=_rel)
def test_workflow_and_action_rules(path: Path, rule: str) -> None:
    bad = RULES[rule](path, _load(path))
    assert not bad, f"{rule}:\n" + "\n".join(bad)


def _generated_workflows(root: Path) -> list[Path]:
    """The workflows `gatebot init` writes into a user's repository (review, commands, approve,
    deploy)."""
    from bot.onboarding.init import DeployTargetSpec, InitOptions, plan_files

    planned = plan_files(InitOptions(target=DeployTargetSpec("inf", "inf.internal")))
    out = []
    for planned_file in planned:
        if planned_file.path.startswith(".github/workflows/"):
            path = root / planned_file.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(planned_file.content, encoding="utf-8")
            out.append(path)
    assert len(out) == 4, [p.path for p in planned]  # review, commands, approve, deploy
    return out


@pytest.mark.parametrize("rule", list(RULES), ids=list(RULES))
def test_generated_workflows_obey_the_rules(rule: str, tmp_path: Path) -> None:
    bad = [
        line for path in _generated_workflows(tmp_path) for line in RULES[rule](path, _load(path))
    ]
    assert not bad, f"gatebot init writes workflows breaking {rule!r}:\n" + "\n".join(bad)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def _describe(finding: dict[str, Any]) -> str:
    severity = finding.get("determinations", {}).get("severity")
    where = []
    for loc in finding.get("locations", []):
        sym = loc.get("symbolic", {})
        key = sym.get("key", {}).get("Local", {})
        row = loc.get("concrete", {}).get("location", {}).get("start_point", {}).get("row", -1)
        where.append(f"{key.get('verbatim_path')}:{row + 1} {sym.get('annotation', '')}")
    return f"{finding.get('ident')} ({severity}): " + "; ".join(where)


def zizmor_findings(paths: list[Path], cwd: Path) -> list[str]:
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    # zizmor exits non-zero when it has findings; the JSON report on stdout is what we judge.
    assert proc.stdout.strip(), f"zizmor produced no report: {proc.stderr[-2000:]}"
    return [_describe(f) for f in json.loads(proc.stdout) if not f.get("ignored")]


def test_zizmor_flags_the_bad_workflow(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(BAD_WORKFLOW)
    found = "\n".join(zizmor_findings([tmp_path / "bad.yml"], tmp_path))
    for ident in ("template-injection", "unpinned-uses", "artipacked", "dangerous-triggers"):
        assert ident in found


def test_zizmor_reports_nothing_medium_or_higher() -> None:
    assert ALL_FILES, "no workflow or action files to audit"
    # Inline `# zizmor: ignore[rule]` comments (each with its justification) are honoured.
    found = zizmor_findings(ALL_FILES, ROOT)
    assert not found, "zizmor findings:\n" + "\n".join(found)


def test_generated_workflows_pass_zizmor_and_the_schema(tmp_path: Path) -> None:
    paths = _generated_workflows(tmp_path)
    found = zizmor_findings(paths, tmp_path)
    assert not found, "zizmor findings in what `gatebot init` writes:\n" + "\n".join(found)
    proc = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)],
    ids=["workflows", "actions"],
)
def test_files_match_githubs_published_schemas(schema: str, paths: list[Path]) -> None:
    assert paths, f"no files for {schema}"
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
