"""Prompt injection: whatever the model answers, the structure of the verdict holds.

Each case in tests/security/injection/ is a pull request that tries to talk the reviewer into
approving it. We run the real CLI against a fake Gemini that is fully "convinced": it approves
everything, or it answers with markup and workflow commands aimed at our outputs. Then:
- deterministic local findings (a committed private key) stay, and the gate fails;
- protected paths stay `needs_human`; the model cannot turn them into a pass;
- findings only ever point at files of the diff (a finding naming a block number the batch
  does not have lands nowhere); off-diff lines are never annotated;
- the prompt's file fences hold (the model is only ever asked about changed files);
- model text is escaped in summary.md and cannot inject workflow commands into the log.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.gemini import FAKE_KEY
from tests.fakes.github import FakeGitHub
from tests.gitrepo import RepoBuilder
from tests.security.harness import (
    INJECTED_COMMANDS,
    INJECTED_MARKUP,
    Answer,
    HostileGemini,
    approve_everything,
    clean_env,
    hostile_markup,
    new_private_key,
    run_gatebot,
)

CORPUS = Path(__file__).parent / "injection"
CASES = sorted(CORPUS.glob("*.yml"))
EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
RAW_MENTION = re.compile(r"(?<![\w`\\&#;])@(org/security-team|admin)\b")

BASE_FILES = {
    "src/util.py": "def add(a, b):\n    return a + b\n",
    "src/orders.py": "def place(order):\n    return order\n",
    ".github/workflows/ci.yml": "name: ci\non: pull_request\npermissions: {}\njobs: {}\n",
    "action.yml": "name: gatebot\nruns:\n  using: composite\n  steps: []\n",
    ".github/gatebot.yml": "review:\n  blocking_severity: high\n",
    "README.md": "# inf-trader\n",
}


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    message: str
    files: dict[str, str | None]  # None: the PR deletes the path
    protected: tuple[str, ...]
    key_files: tuple[str, ...]


def load_case(path: Path, key: str) -> Case:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    files = {
        p: None if c is None else c.replace("@@PRIVATE_KEY@@", key.strip())
        for p, c in data["files"].items()
    }
    return Case(
        name=path.stem,
        description=data["description"],
        message=data["message"],
        files=files,
        protected=tuple(data.get("protected", ())),
        key_files=tuple(p for p, c in data["files"].items() if c and "@@PRIVATE_KEY@@" in c),
    )


@pytest.fixture(scope="module")
def private_key() -> str:
    return new_private_key()


@dataclass
class Review:
    case: Case
    proc: subprocess.CompletedProcess[str]
    verdict: dict[str, Any]
    summary: str
    server: HostileGemini
    head: str
    base: str


def build_pr(
    root: Path, case: Case, base_files: dict[str, str] | None = None
) -> tuple[RepoBuilder, str, str]:
    rb = RepoBuilder(root / "repo")
    base = rb.commit(base_files or BASE_FILES, message="base")
    head = rb.commit(case.files, branch="pr", parents=[base], message=case.message)
    rb.checkout("pr")  # as actions/checkout leaves the PR's tree in the workspace
    return rb, base, head


@pytest.fixture
def hostile() -> Iterator[Any]:
    started: list[HostileGemini] = []

    def start(answer: Answer) -> HostileGemini:
        server = HostileGemini(answer).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def review(
    tmp_path: Path,
    case: Case,
    server: HostileGemini,
    base_files: dict[str, str] | None = None,
    **env: str,
) -> Review:
    rb, base, head = build_pr(tmp_path, case, base_files)
    out = tmp_path / "out"
    proc = run_gatebot(
        [
            *("review", "--repo", str(rb.path), "--base", "main", "--head", "pr"),
            *("--out", str(out), "--cache-dir", str(tmp_path / "cache")),
        ],
        clean_env(GEMINI_API_KEY=FAKE_KEY, GOOGLE_GEMINI_BASE_URL=server.url, **env),
        tmp_path,
    )
    assert (out / "verdict.json").exists(), f"no verdict: {proc.stdout}\n{proc.stderr}"
    verdict = json.loads((out / "verdict.json").read_text())
    summary = (out / "summary.md").read_text(encoding="utf-8")
    return Review(case, proc, verdict, summary, server, head, base)


# A CommonMark code span: a run of n backticks, then anything up to the next run of exactly n.
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.*?)(?<!`)\1(?!`)", re.DOTALL)


def assert_markdown_inert(markdown: str, where: str) -> None:
    """No raw HTML, live link or @mention from untrusted text outside code spans."""
    text = _CODE_SPAN.sub("", markdown)
    for marker in INJECTED_MARKUP:
        assert not marker.search(text), f"{where} carries raw {marker.pattern!r}"
    assert not RAW_MENTION.search(text), f"{where} carries a live @mention"


def findings(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for fr in verdict["files"] for f in fr["findings"]]


def assert_structure_holds(r: Review) -> None:
    v, case = r.verdict, r.case
    changed = set(case.files)
    # The model was really consulted (otherwise this test would prove nothing).
    assert r.server.stats.ok_calls >= 1
    assert "gemini" in v["provider"] and not v["degraded"], v["provider"]
    # Fences hold: the model is asked about changed files only, each once per call.
    for call in r.server.stats.calls:
        assert set(call.paths) <= changed, call.paths
        assert len(call.paths) == len(set(call.paths)), f"a file block was forged: {call.paths}"
    # Deterministic findings stay, whatever the model said: the committed key fails the gate.
    secret_files = {f["path"] for f in findings(v) if f["source"] == "local"}
    assert set(case.key_files) <= secret_files, f"local findings lost: {secret_files}"
    assert v["verdict"] == "fail", v["verdict"]
    assert r.proc.returncode == 1, r.proc.stderr
    # Protected paths stay unapproved.
    for path in case.protected:
        assert path in v["needs_human"], f"{path} not needs_human: {v['needs_human']}"
        (fr,) = [fr for fr in v["files"] if fr["path"] == path]
        assert fr["needs_human"]
    # Findings naming a block number the batch does not have (0, -1, past the end, JSON true)
    # land on no file, whatever path they claim.
    strays = [f for f in findings(v) if "nobody asked about" in f["message"]]
    assert not strays, strays
    # Findings never point outside the diff; off-diff lines are never annotatable.
    for f in findings(v):
        assert f["path"] in changed, f"finding about a file outside the diff: {f['path']}"
        if f["line"] is not None and f["line"] > 1000:
            assert not f["in_diff"], f
    assert {fr["path"] for fr in v["files"]} <= changed


def assert_output_escaped(r: Review) -> None:
    assert_markdown_inert(r.summary, "summary.md")
    for stream in (r.proc.stdout, r.proc.stderr):
        for line in stream.splitlines():
            assert not line.lstrip().startswith(INJECTED_COMMANDS), f"injected command: {line!r}"


@pytest.mark.parametrize("case_path", CASES, ids=lambda p: p.stem)
def test_injection_corpus(tmp_path: Path, private_key: str, hostile: Any, case_path: Path) -> None:
    case = load_case(case_path, private_key)
    r = review(tmp_path, case, hostile(hostile_markup))
    assert_structure_holds(r)
    assert_output_escaped(r)


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 5
    for path in CASES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert {"description", "message", "files"} <= set(data), path.name
        assert any("@@PRIVATE_KEY@@" in (c or "") for c in data["files"].values()), path.name


def _event(tmp_path: Path, base: str, head: str) -> Path:
    payload = json.loads((EVENTS / "pull_request_opened.json").read_text())
    payload["pull_request"]["base"]["sha"] = base
    payload["pull_request"]["head"]["sha"] = head
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return path


def _actions_env(tmp_path: Path, gh: FakeGitHub, base: str, head: str) -> dict[str, str]:
    for name in ("step_summary.md", "output.txt"):
        (tmp_path / name).touch()
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo-org/inf-trader",
        "GITHUB_API_URL": gh.url,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(_event(tmp_path, base, head)),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_RUN_ID": "9001",
        "GITHUB_TOKEN": gh.token,
    }


def _actions_review(
    tmp_path: Path, case: Case, server: HostileGemini, gh: FakeGitHub
) -> tuple[Review, str]:
    rb, base, head = build_pr(tmp_path / "pr", case)
    env = _actions_env(tmp_path, gh, base, head)
    out = tmp_path / "out"
    proc = run_gatebot(
        ["review", "--repo", str(rb.path), "--out", str(out), "--cache-dir", str(tmp_path / "c")],
        clean_env(GEMINI_API_KEY=FAKE_KEY, GOOGLE_GEMINI_BASE_URL=server.url, **env),
        tmp_path,
    )
    assert (out / "verdict.json").exists(), f"no verdict: {proc.stdout}\n{proc.stderr}"
    r = Review(
        case,
        proc,
        json.loads((out / "verdict.json").read_text()),
        (out / "summary.md").read_text(encoding="utf-8"),
        server,
        head,
        base,
    )
    return r, (tmp_path / "step_summary.md").read_text(encoding="utf-8")


def test_workflow_commands_cannot_be_injected_by_the_model(
    tmp_path: Path, private_key: str, hostile: Any, github_server: FakeGitHub
) -> None:
    # A fork's read-only token: annotations go out as workflow commands on stdout.
    github_server.forbid_checks()
    case = load_case(CORPUS / "comment.yml", private_key)
    r, _ = _actions_review(tmp_path, case, hostile(hostile_markup), github_server)
    assert_structure_holds(r)
    commands = [ln for ln in r.proc.stdout.splitlines() if ln.startswith("::")]
    annotations = [ln for ln in commands if ln.startswith(("::error ", "::warning ", "::notice "))]
    assert annotations, "no annotations were emitted as workflow commands"
    for line in r.proc.stdout.splitlines() + r.proc.stderr.splitlines():
        assert not line.lstrip().startswith(INJECTED_COMMANDS), f"injected command: {line!r}"
    for line in annotations:
        props, _, data = line[2:].partition("::")
        assert "\n" not in data and "\r" not in data
        file_prop = dict(p.split("=", 1) for p in props.split(" ", 1)[1].split(","))["file"]
        assert file_prop in case.files, f"annotation on a file outside the diff: {file_prop}"


def test_check_run_and_job_summary_stay_on_the_diff_and_inert(
    tmp_path: Path, private_key: str, hostile: Any, github_server: FakeGitHub
) -> None:
    case = load_case(CORPUS / "filename.yml", private_key)
    r, step_summary = _actions_review(tmp_path, case, hostile(hostile_markup), github_server)
    assert_structure_holds(r)
    (run,) = github_server.runs_for(r.head)
    assert run.conclusion == "failure"
    assert run.annotations, "the check run carries no annotations"
    for a in run.annotations:
        assert a["path"] in case.files, a["path"]
        assert a["start_line"] <= 1000, "an off-diff line was annotated"
    # Every markdown outlet GitHub renders: the check run's summary and text, the job summary.
    assert_markdown_inert(run.summary or "", "the check run summary")
    assert_markdown_inert(run.text or "", "the check run text")
    assert_markdown_inert(step_summary, "the job summary")


def _relaxing_case(private_key: str) -> Case:
    return Case(
        name="relax",
        description="the PR switches the gate off in its own config",
        message="chore: tidy config",
        files={
            ".github/gatebot.yml": (
                'review:\n  ignore: ["**"]\n  protected: {paths: []}\n  local: {secrets: false}\n'
            ),
            "keys/id_ed25519": private_key,
        },
        protected=(".github/gatebot.yml",),
        key_files=("keys/id_ed25519",),
    )


def test_pr_cannot_relax_the_gate_with_its_own_config(
    tmp_path: Path, private_key: str, hostile: Any
) -> None:
    r = review(tmp_path, _relaxing_case(private_key), hostile(approve_everything))
    assert ".github/gatebot.yml" in r.verdict["needs_human"]
    secret_files = {f["path"] for f in findings(r.verdict) if f["source"] == "local"}
    assert "keys/id_ed25519" in secret_files
    assert r.verdict["verdict"] == "fail"


def test_action_overrides_do_not_bring_back_the_prs_config(
    tmp_path: Path, private_key: str, hostile: Any
) -> None:
    # What action.yml does: `cache-key --effective-config F`, then `review --config F`.
    case = _relaxing_case(private_key)
    rb, _, _ = build_pr(tmp_path, case)
    effective = tmp_path / "runner" / "config.yml"
    env = clean_env(GATEBOT_BLOCKING_SEVERITY="high")
    prep = run_gatebot(
        ["cache-key", "--repo", str(rb.path), "--effective-config", str(effective)], env, tmp_path
    )
    assert prep.returncode == 0, prep.stderr
    assert effective.exists(), "the override did not produce an effective config"
    server = hostile(approve_everything)
    out = tmp_path / "out"
    proc = run_gatebot(
        [
            *("review", "--repo", str(rb.path), "--base", "main", "--head", "pr"),
            *("--out", str(out), "--config", str(effective)),
        ],
        clean_env(GEMINI_API_KEY=FAKE_KEY, GOOGLE_GEMINI_BASE_URL=server.url),
        tmp_path,
    )
    verdict = json.loads((out / "verdict.json").read_text())
    secret_files = {f["path"] for f in findings(verdict) if f["source"] == "local"}
    assert "keys/id_ed25519" in secret_files, proc.stderr
    assert verdict["verdict"] == "fail"


@pytest.mark.parametrize(("conclusion", "verdict"), [("neutral", "neutral"), ("failure", "fail")])
def test_a_protected_change_is_never_a_pass(
    tmp_path: Path, hostile: Any, conclusion: str, verdict: str
) -> None:
    # Nothing else to find: only the protected path stands between the model's "approve" and a
    # green check. The policy is the base's (the merge base's .github/gatebot.yml).
    case = Case(
        name="workflow-only",
        description="a workflow change the model approves",
        message="ci: pre-approved",
        files={".github/workflows/ci.yml": "name: ci\non: pull_request\npermissions: {}\n"},
        protected=(".github/workflows/ci.yml",),
        key_files=(),
    )
    base_files = BASE_FILES | {
        ".github/gatebot.yml": f"review:\n  protected:\n    conclusion: {conclusion}\n"
    }
    r = review(tmp_path, case, hostile(approve_everything), base_files)
    assert r.verdict["needs_human"] == [".github/workflows/ci.yml"]
    assert r.verdict["verdict"] == verdict
    assert r.proc.returncode == (1 if verdict == "fail" else 0), r.proc.stderr
