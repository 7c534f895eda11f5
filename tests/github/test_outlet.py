"""The Actions outlet: one place for the job summary's limit, outputs and workflow commands."""

from __future__ import annotations

import io
from pathlib import Path

from bot.github.limits import STEP_SUMMARY_LIMIT
from bot.github.outlet import ActionsOutlet
from bot.github.outputs import parse_outputs


def _outlet(tmp_path: Path, actions: bool = True) -> tuple[ActionsOutlet, io.StringIO]:
    err = io.StringIO()
    env = {
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    if actions:
        env["GITHUB_ACTIONS"] = "true"
    return ActionsOutlet.from_env(env, stderr=err, stdout=io.StringIO()), err


def test_the_summary_stays_within_the_steps_limit_across_writers(tmp_path: Path) -> None:
    outlet, _ = _outlet(tmp_path)
    outlet.summary("### deploy\n" + "| a | b |\n" * 10)
    outlet.summary("x" * (STEP_SUMMARY_LIMIT), full="the audit report")
    for _ in range(8):
        outlet.summary("é" * STEP_SUMMARY_LIMIT)  # 2 bytes a character
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("### deploy\n")
    assert len(text.encode()) <= STEP_SUMMARY_LIMIT
    assert "Truncated" in text and "the audit report" in text


def test_outputs_only_inside_actions_and_injection_proof(tmp_path: Path) -> None:
    outlet, _ = _outlet(tmp_path)
    assert outlet.outputs({"verdict": "pass\nexit-code=0"})
    assert parse_outputs((tmp_path / "output").read_text()) == {"verdict": "pass\nexit-code=0"}
    local, _ = _outlet(tmp_path / "local", actions=False)
    assert not local.outputs({"verdict": "pass"})


def test_warnings_are_annotations_in_actions_and_plain_lines_elsewhere(tmp_path: Path) -> None:
    outlet, err = _outlet(tmp_path)
    outlet.warning("50% done\nnext", title="a: b")
    assert err.getvalue() == "::warning title=a%3A b::50%25 done%0Anext\n"
    local, err = _outlet(tmp_path, actions=False)
    local.warning("plain")
    assert err.getvalue() == "warning: plain\n"
