"""Red-team regressions on the policy a pull request is judged by (docs/security.md, §6.10):
each one a way the PR chose or loosened its own gate, driven over the real wire — a real
repository (pygit2), the Action's own steps (`gatebot cache-key`, then `gatebot review` with the
`--config` it hands over), the loopback GitHub (the conclusion asserted is the one GitHub
received) and the loopback Gemini. `Gate.run` checks that nothing outside the cache and output
directories changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.config.review import DEFAULT_PROTECTED
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.prgate import Gate

MARK = "FIXME-SECURITY"  # the loopback model reports a high finding on a line that has it
# What a PR would like its gate to say: nothing to review, and "neutral" (passing) for the
# protected paths it changes.
LOOSE = {"review": {"ignore": ["**"], "protected": {"conclusion": "neutral", "paths": []}}}


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


# --- the Action's `config` input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("named", "overrides"),
    [
        ("ci/gatebot.yml", {}),
        ("ci/gatebot.yml", {"GATEBOT_BLOCKING_SEVERITY": "high"}),
        (".github/gatebot.yml", {}),
        ("./ci/../.github/gatebot.yml", {"GATEBOT_MODEL_DEEP": "pro"}),
    ],
    ids=["custom path", "custom path with an input override", "the default path", "dotted"],
)
def test_a_config_input_naming_a_file_in_the_repository_is_read_at_the_base(
    gate: Gate, named: str, overrides: dict[str, str]
) -> None:
    # `with: {config: ci/gatebot.yml}` in the workflow: the name is the maintainer's, but on a
    # pull request the file in the workspace is the PR's. Before, the PR's copy was read as
    # given: `ignore: ["**"]` passed every file unread (`success`), and with the default path
    # spelled out, `protected.conclusion: neutral` turned the config change itself neutral.
    where = Path(named).resolve().relative_to(Path.cwd()).as_posix()  # as git spells it
    gate.main({"src/app.py": "x = 1\n", where: yaml.safe_dump({"review": {}})})
    head = gate.push({"src/app.py": f"x = 2  # {MARK}\n", where: yaml.safe_dump(LOOSE)})
    gate.repo.checkout("pr")  # the workspace holds the PR's head, as actions/checkout leaves it
    outputs = gate.prepare(head, "--config", named, **overrides)
    assert outputs["config"], outputs
    run = gate.run(head, args=("--config", outputs["config"]), **overrides)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    files = {f["path"]: f for f in run.verdict["files"]}
    assert files["src/app.py"]["status"] == "reviewed"
    assert any(x["category"] == "security" for x in files["src/app.py"]["findings"])
    # The file that holds the policy is protected wherever the workflow keeps it.
    assert run.verdict["needs_human"] == [where]
    if not overrides:  # (with an input override the summary names the effective file)
        assert gate.base is not None
        assert f"`{where} @ base {gate.base[:7]}`" in (run.check.summary or "")


def test_a_config_input_absent_at_the_base_is_the_defaults_and_protected(gate: Gate) -> None:
    # The PR adds the file the workflow names: there is no trusted copy, so the defaults judge
    # it, and the new policy file needs a human.
    gate.main({"src/app.py": "x = 1\n"})
    head = gate.push({"src/app.py": "x = 2\n", "ci/gatebot.yml": yaml.safe_dump(LOOSE)})
    gate.repo.checkout("pr")
    outputs = gate.prepare(head, "--config", "ci/gatebot.yml")
    run = gate.run(head, args=("--config", outputs["config"]))
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    assert run.verdict["needs_human"] == ["ci/gatebot.yml"]
    status = {f["path"]: f["status"] for f in run.verdict["files"]}
    assert status["src/app.py"] == "reviewed"
    assert "defaults (no ci/gatebot.yml @ base" in (run.check.summary or "")


def test_a_config_outside_the_repository_is_read_as_given(gate: Gate) -> None:
    # A file an earlier step of the workflow wrote (the runner's temporary directory): the
    # operator's, not the PR's.
    gate.main({"src/app.py": "x = 1\n"})
    head = gate.push({"src/app.py": f"x = 2  # {MARK}\n"})
    outside = gate.runner / "ops-gatebot.yml"
    gate.runner.mkdir(exist_ok=True)
    outside.write_text(yaml.safe_dump({"review": {"blocking_severity": "critical"}}))
    outputs = gate.prepare(head, "--config", str(outside))
    run = gate.run(head, args=("--config", outputs["config"]))
    assert run.code == 0, run.proc.stderr[-2000:]
    assert run.check.conclusion == "success" and run.verdict["blocking_severity"] == "critical"


# --- protected paths under another spelling ---------------------------------------------------

# Each is, on a case-insensitive or normalising checkout (macOS and Windows runners, a
# developer's machine), the protected file itself — or, for `action.yaml`, the other name
# GitHub reads an action's metadata from.
SPELLINGS = {
    ".github/actions/setup/Action.yml": "the case of a protected name",
    ".GitHub/Workflows/release.yml": "the case of a protected directory",
    ".GITATTRIBUTES": "the case of an always-protected name",
    "tools/action.yml.": "a trailing dot (Windows drops it)",
    "tools/action.yml  ": "trailing spaces (Windows drops them)",
    "tools/act\u200cion.yml": "a code point HFS+ ignores",
    "de\u0301ploy/run.sh": "NFD of a protected NFC name",
    "DÉPLOY/hosts": "the case of a non-ASCII protected name",
    "tools/action.yaml": "GitHub's other name for an action's metadata",
}


def test_a_protected_path_under_another_spelling_needs_a_human(gate: Gate) -> None:
    # Before, each of these was an ordinary file: reviewed by the model alone and, with
    # nothing found, `success` — although on such a runner it replaces a protected file.
    gate.main(
        {"src/app.py": "x = 1\n", ".github/actions/setup/action.yml": "runs: {using: node20}\n"},
        config={"review": {"protected": {"paths": [*DEFAULT_PROTECTED, "d\u00e9ploy/**"]}}},
    )
    head = gate.push(
        {**{path: f"# {why}\n" for path, why in SPELLINGS.items()}, "src/app.py": "x = 2\n"}
    )
    run = gate.run(head)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    assert sorted(run.verdict["needs_human"]) == sorted(SPELLINGS)
    status = {f["path"]: f["status"] for f in run.verdict["files"]}
    assert status["src/app.py"] == "reviewed"  # an ordinary name is still an ordinary file
