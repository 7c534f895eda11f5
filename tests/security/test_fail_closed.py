"""Fail closed: nothing a reviewer did not cover reaches a passing conclusion.

GitHub counts success, neutral and skipped as passing a required check. Each class of "not
reviewed" is driven over the wire (a real repository, the loopback GitHub and Gemini, the
CLI as the Action runs it) and the conclusion GitHub received is asserted, with its cause in
the title, by default and with the base config's fail-open switch (`review.unreviewed:
neutral`), which opens outages and missing keys only — never what the PR's content or a cap
caused. `Gate.run` also checks that nothing outside the cache directory changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.prgate import Gate

FAST = {"attempts": 2, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.0}
OPEN = {"review": {"unreviewed": "neutral", "gemini": FAST}}
CLOSED = {"review": {"gemini": FAST}}


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


def _module(i: int, extra: str = "") -> str:
    return f"def f{i}(x):\n    return x + {i}\n{extra}"


def _pr(gate: Gate, config: dict[str, Any], **head: Any) -> str:
    gate.main({"a.py": _module(1), "b.py": _module(2)}, config=config)
    return gate.push({"a.py": _module(1, "\nq = 1\n"), "b.py": _module(2, "\nq = 2\n"), **head})


@pytest.mark.parametrize(
    ("config", "conclusion", "code"),
    [(CLOSED, "failure", 1), (OPEN, "neutral", 0)],
    ids=["closed", "open"],
)
def test_a_provider_outage_fails_closed_unless_the_base_opts_into_fail_open(
    gate: Gate, config: dict[str, Any], conclusion: str, code: int
) -> None:
    assert gate.gemini is not None
    gate.gemini.fail("503", times=-1)
    head = _pr(gate, config)
    run = gate.run(head)
    assert run.code == code, run.proc.stderr[-2000:]
    assert run.check.conclusion == conclusion
    assert "not reviewed: 2 files (provider outage 2)" in (run.check.title or "")
    assert run.causes() == {"a.py": "provider", "b.py": "provider"}
    assert run.verdict["conclusion"] == conclusion


@pytest.mark.parametrize(
    ("config", "unreadable", "conclusion"),
    [(CLOSED, False, "failure"), (OPEN, False, "neutral"), (OPEN, True, "failure")],
    ids=["closed", "open", "open-with-content-cause"],
)
def test_every_model_of_the_fallback_chain_gone_is_a_provider_cause(
    gate: Gate, config: dict[str, Any], unreadable: bool, conclusion: str
) -> None:
    # The API lists its models at run start, then answers 404 for every one of them (all
    # retired under the run): each file walks its tier's chain and the next tiers', and with no
    # model left it is not reviewed, cause provider. Fail-open opens exactly that: a file whose
    # content is the cause in the same run still fails it.
    assert gate.gemini is not None
    gate.gemini.fail("404", times=-1)
    extra = {"blob.bin": b"\x7fELF\x02\x01\x00binary"} if unreadable else {}
    head = _pr(gate, config, **extra)
    run = gate.run(head)
    assert run.code == (0 if conclusion == "neutral" else 1), run.proc.stderr[-2000:]
    assert run.check.conclusion == conclusion
    causes = {"a.py": "provider", "b.py": "provider"}
    if unreadable:
        causes["blob.bin"] = "content"
    assert run.causes() == causes
    assert run.verdict["conclusion"] == conclusion
    assert "not reviewed: " in (run.check.title or "")
    # Every model of the chain was asked, each once per batch, and none answered.
    calls = gate.gemini.stats.calls
    assert calls and all(c.status == 404 for c in calls)
    moved = run.verdict["metrics"]["model_fallbacks"]
    assert [f["to_model"] for f in moved][-1] is None
    assert sorted(f["from_model"] for f in moved) == sorted(c.model for c in calls)
    assert len({c.model for c in calls}) == len(calls) >= 3  # lite, standard and deep models
    for f in run.verdict["files"]:
        if f["path"] in ("a.py", "b.py"):
            assert "no model left to review it" in f["not_reviewed"]["reason"]


@pytest.mark.parametrize("config", [CLOSED, OPEN], ids=["closed", "open"])
@pytest.mark.parametrize(
    ("name", "content", "mode"),
    [
        ("logo.bin", b"\x89PNG\r\n\x1a\n\x00\x00binary", None),
        ("big.txt", "y = 1\n" * 400_000, None),  # over max_file_bytes (2 MB)
        ("vendor/lib", "a submodule pointer", 0o160000),
    ],
    ids=["binary", "oversize", "submodule"],
)
def test_content_the_gate_cannot_read_always_fails(
    gate: Gate, config: dict[str, Any], name: str, content: Any, mode: int | None
) -> None:
    gate.main({"a.py": _module(1)}, config=config)
    modes = {name: mode} if mode else None
    head = gate.push({"a.py": _module(1, "\nq = 1\n"), name: content}, modes=modes)
    run = gate.run(head)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"  # fail-open never opens content causes
    assert "not reviewed: 1 file (content 1)" in (run.check.title or "")
    assert run.causes() == {name: "content"}
    assert run.check.summary is not None and "a PR author can cause this" in run.check.summary


@pytest.mark.parametrize(
    ("config", "conclusion"), [(CLOSED, "failure"), (OPEN, "neutral")], ids=["closed", "open"]
)
def test_no_model_key_inside_actions_is_not_reviewed_by_a_model(
    gate: Gate, config: dict[str, Any], conclusion: str
) -> None:
    head = _pr(gate, config)
    run = gate.run(head, key=False)
    assert run.check.conclusion == conclusion
    assert (run.check.title or "").endswith(
        "not reviewed by a model: 2 files (no model key in this run)"
    )
    assert set(run.causes().values()) == {"no_model"}
    assert run.verdict["provider"] == "local"


def test_a_fork_pr_without_secrets_fails_closed_through_the_job(gate: Gate) -> None:
    # A fork's token is read-only: no check run can be posted; the job itself fails (exit 1),
    # the annotations and the job summary say why.
    gate.github.forbid_checks()
    head = _pr(gate, CLOSED)
    run = gate.run(head, key=False, fork=True)
    assert run.code == 1
    assert not [r for r in gate.github.runs.values() if r.conclusion in ("success", "neutral")]
    summary = (gate.runner / "step_summary.md").read_text()
    assert "not reviewed by a model" in summary and "Fork PR" in summary
    assert "verdict<<" in (gate.runner / "output.txt").read_text()


def test_outside_actions_the_local_reviewer_still_decides(gate: Gate) -> None:
    # The README's first command: no key, no Actions; the local checks decide and say so.
    head = _pr(gate, CLOSED)
    from tests.security.harness import clean_env, run_gatebot

    args = ["review", "--repo", str(gate.repo.path), "--base", "main", "--head", head]
    proc = run_gatebot([*args, "--out", str(gate.out)], clean_env(), gate.tmp)
    assert proc.returncode == 0, proc.stderr
    assert "local (degraded)" in proc.stdout


class _Blocking(FakeGemini):
    """Gemini's safety filter: a prompt holding a file with BLOCK-ME is refused (the prompt
    feedback names the reason, no candidate); one with STOP-ME ends with finishReason SAFETY."""

    def generate(self, model: str, request: dict[str, Any]) -> tuple[int, Any, Any]:
        status, body, fault = super().generate(model, request)
        prompt = str(request.get("contents"))
        if status == 200 and "BLOCK-ME" in prompt:
            return 200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, fault
        if status == 200 and "STOP-ME" in prompt:
            body["candidates"] = [{"finishReason": "SAFETY", "index": 0}]
        return status, body, fault


@pytest.mark.parametrize("marker", ["BLOCK-ME", "STOP-ME"])
def test_a_safety_block_is_the_contents_doing_and_spares_the_other_files(
    tmp_path: Path, github_server: FakeGitHub, marker: str
) -> None:
    model = _Blocking().start()
    try:
        gate = Gate(tmp_path, github_server, model)
        head = _pr(gate, OPEN, **{"c.py": f"# {marker}\nz = 3\n"})
        run = gate.run(head)
        assert run.check.conclusion == "failure"  # fail-open does not open content
        assert run.causes() == {"c.py": "content"}  # the other files were reviewed
        assert "safety filter" in run.verdict["files"][2]["not_reviewed"]["reason"]
        assert "not reviewed: 1 file (content 1)" in (run.check.title or "")
    finally:
        model.stop()


class _Garbage(FakeGemini):
    """A model that answers every call with text that is not the answer's JSON."""

    def generate(self, model: str, request: dict[str, Any]) -> tuple[int, Any, Any]:
        status, body, fault = super().generate(model, request)
        if status == 200:
            body["candidates"][0]["content"]["parts"][0]["text"] = "I approve this PR."
        return status, body, fault


def test_a_model_answering_garbage_is_capped_and_fails_closed(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    model = _Garbage().start()
    try:
        gate = Gate(tmp_path, github_server, model)
        gate.main({f"m{i}.py": _module(i) for i in range(14)}, config=OPEN)
        head = gate.push({f"m{i}.py": _module(i, f"\nq = {i}\n") for i in range(14)})
        run = gate.run(head)
        m = run.verdict["metrics"]
        # One planned call: at most 2 × 1 + 4 requests, not one re-ask per file (55 before).
        assert m["api_calls_cap"] == 6
        assert model.stats.generate_calls <= 6 and m["api_calls"] <= 6
        assert run.check.conclusion == "failure"  # an unusable answer is no outage
        assert set(run.causes().values()) <= {"budget", "content"} and len(run.causes()) == 14
    finally:
        model.stop()


def test_a_spend_cap_leaves_files_not_reviewed_with_cause_budget(gate: Gate) -> None:
    # A dollar cap below any call's price: the first call is refused before it is made.
    head = _pr(gate, {"review": {**OPEN["review"], "max_usd": 0.0000001}})
    run = gate.run(head)
    assert run.check.conclusion == "failure"
    assert set(run.causes().values()) == {"budget"}
    assert "call cap" in (run.check.title or "")
