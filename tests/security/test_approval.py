"""The unblock path: a maintainer approves one head commit through workflow_dispatch.

Over the wire: the gate (a subprocess, as the Action runs it) posts its check on the loopback
GitHub; `gatebot approve` (a subprocess in a workflow_dispatch environment) records the
approval on that check run; the conclusion GitHub holds is asserted at every step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.github.approval import RECORD_PREFIX, parse_record, record
from bot.review.models import Approval
from tests.fakes.github import FakeGitHub
from tests.security.harness import clean_env, run_gatebot
from tests.security.prgate import CHECK, REPOSITORY, RUN_ID, Gate, runner_commands

PR = 42  # the number in tests/fixtures/events/pull_request_opened.json
AUTHOR = "alice"  # its author


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server)


def _approve(gate: Gate, sha: str, actor: str = "maintainer", event: str = "workflow_dispatch"):
    runner = gate.tmp / "approve-runner"
    runner.mkdir(exist_ok=True)
    for name in ("summary.md", "output.txt"):
        (runner / name).write_text("")
    env = clean_env(
        GITHUB_ACTIONS="true",
        GITHUB_EVENT_NAME=event,
        GITHUB_REPOSITORY=REPOSITORY,
        GITHUB_API_URL=gate.github.url,
        GITHUB_SERVER_URL="https://github.invalid",
        GITHUB_TOKEN=gate.github.token,
        GITHUB_RUN_ID="777",
        GITHUB_ACTOR="someone-else",
        GITHUB_TRIGGERING_ACTOR=actor,
        GITHUB_STEP_SUMMARY=str(runner / "summary.md"),
        GITHUB_OUTPUT=str(runner / "output.txt"),
    )
    return run_gatebot(["approve", "--pr", str(PR), "--sha", sha], env, gate.tmp)


def _protected_pr(gate: Gate) -> str:
    gate.main({"app.py": "x = 1\n", ".github/workflows/ci.yml": "on: push\n"})
    head = gate.push({".github/workflows/ci.yml": "on: [push, pull_request]\n"})
    gate.github.add_pull(PR, head_sha=head, base_sha=gate.base or "", diff="", author=AUTHOR)
    gate.github.grant("maintainer", "write")
    gate.github.grant("reader", "read")
    gate.github.grant(AUTHOR, "admin")
    return head


def test_a_maintainer_approves_the_head_and_a_new_push_needs_a_new_approval(gate: Gate) -> None:
    head = _protected_pr(gate)
    first = gate.run(head, key=False)
    assert first.code == 1, first.proc.stderr
    assert first.check.conclusion == "failure"
    assert "protected file" in (first.check.title or "")

    done = _approve(gate, head)
    assert done.returncode == 0, done.stderr
    run = first.check
    assert run.conclusion == "success"
    assert run.title is not None and run.title.startswith("approved by @maintainer: fail:")
    assert run.summary is not None and "Approved by @maintainer for head" in run.summary
    assert f"{head[:12]}" in run.summary and "/actions/runs/777" in run.summary
    approval = parse_record(run.external_id, head)
    assert approval is not None
    assert (approval.approver, approval.sha) == ("maintainer", head)
    assert approval.via == "workflow_dispatch"
    assert "check-run-url<<" in (gate.tmp / "approve-runner" / "output.txt").read_text()

    # A re-run of the gate on the same commit honours the approval it finds there.
    again = gate.run(head, key=False)
    assert again.code == 0, again.proc.stderr
    assert again.check.conclusion == "success"
    v = again.verdict
    assert (v["verdict"], v["conclusion"]) == ("fail", "success")
    assert v["approval"]["approver"] == "maintainer" and v["approval"]["sha"] == head

    # A new push is a new commit: its check fails again until someone approves it.
    newer = gate.push({"app.py": "x = 2\n"})
    gate.github.push(PR, newer, "")
    later = gate.run(newer, key=False)
    assert later.code == 1 and later.check.conclusion == "failure"
    assert later.verdict.get("approval") is None
    # … and the old approval cannot be replayed onto it.
    stale = _approve(gate, head)
    assert stale.returncode == 1 and "a newer commit was pushed" in stale.stderr
    assert later.check.conclusion == "failure"


@pytest.mark.parametrize(
    ("actor", "event", "code", "why"),
    [
        ("reader", "workflow_dispatch", 1, "approving needs write access"),
        (AUTHOR, "workflow_dispatch", 1, "cannot approve their own change"),
        ("dependabot[bot]", "workflow_dispatch", 1, "is a bot"),
        ("mallory\n::set-output name=x::y", "workflow_dispatch", 1, "is not a GitHub login"),
        ("maintainer", "pull_request", 2, "workflow_dispatch"),
    ],
)
def test_who_may_approve(gate: Gate, actor: str, event: str, code: int, why: str) -> None:
    head = _protected_pr(gate)
    assert gate.run(head, key=False).check.conclusion == "failure"
    done = _approve(gate, head, actor=actor, event=event)
    assert done.returncode == code, done.stderr
    assert why in done.stderr and "Traceback" not in done.stderr
    acted_on = runner_commands(done.stdout + "\n" + done.stderr)
    assert {cmd for cmd, _ in acted_on} <= {"add-mask"}, acted_on
    (run,) = gate.github.runs_for(head, CHECK)
    assert run.conclusion == "failure" and run.external_id in (None, "")


def test_an_approval_before_the_review_finishes_is_honoured(gate: Gate) -> None:
    # No gate check yet (the review is queued): the approval creates the check as success;
    # the review, when it runs, reopens the same check and keeps the approval.
    head = _protected_pr(gate)
    done = _approve(gate, head)
    assert done.returncode == 0, done.stderr
    (run,) = gate.github.runs_for(head, CHECK)
    assert run.conclusion == "success" and "not reviewed by gatebot yet" in (run.title or "")
    after = gate.run(head, key=False)
    assert after.code == 0 and after.check.conclusion == "success"
    assert after.verdict["approval"]["approver"] == "maintainer"
    assert len(gate.github.runs_for(head, CHECK)) == 1


def test_a_forged_record_for_another_commit_is_no_approval() -> None:
    sha = "a" * 40
    real = Approval(sha=sha, approver="maintainer", approved_at="2026-01-01T00:00:00Z", via="x")
    assert parse_record(record(real), sha) == real
    assert parse_record(record(real), "b" * 40) is None
    assert parse_record(RECORD_PREFIX + "{not json", sha) is None
    assert parse_record(RECORD_PREFIX + json.dumps({"sha": sha}), sha) is None
    odd = real.model_copy(update={"approver": "x y"})
    assert parse_record(record(odd), sha) is None
    assert parse_record(None, sha) is None and parse_record("", sha) is None


def test_check_names_match_the_gate() -> None:
    # The approve action and the review action default to the same check name.
    action = (Path(__file__).resolve().parents[2] / "action" / "approve" / "action.yml").read_text()
    assert f"default: {CHECK}" in action
    assert RUN_ID  # the gate's runs carry a log link (tests/security/gate.py)
