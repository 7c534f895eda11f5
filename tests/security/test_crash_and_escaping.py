"""No crash leaves a check open; a file name or a model's text is data in every sink.

- SIGTERM in the middle of a model call (the Action's time limit): the check GitHub holds is
  completed `failure` with the reason, verdict.json is written, nothing waits for the call.
- An exception inside the review (the guard itself, driven with a real check run on the
  loopback GitHub): `failure`, "gatebot crashed: <kind>", the run's log link, verdict.json.
- Hostile file names (escape sequences, workflow commands of both syntaxes, rich markup,
  bidi overrides, bytes that are not UTF-8, HTML) and hostile model text (lone surrogates,
  escape sequences, line breaks before `::`): no crash, JSON that GitHub can parse, no
  control character on the terminal and no workflow command the runner would act on.
- A base config whose values contradict each other: exit 2 naming the keys, no traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError
from bot.github.crash import Crashed, closed_on_error
from bot.github.integration import ActionsContext
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.harness import clean_env
from tests.security.prgate import CHECK, RUN_ID, Gate, runner_commands, snapshot

FAST = {"attempts": 1, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.0}

HOSTILE_NAMES = [
    "src/\x1b[2J\x1b[31mred.py",
    "src/##[set-output name=verdict;]pass.py",
    "src/::error file=x::pwned.py",
    "src/[bold red]markup[/bold red].py",
    "src/evil\u202egnp.py",
    "src/bad\udcff\udcfename.py",  # the bytes 0xff 0xfe: not UTF-8
    "src/<img src=x onerror=alert(1)>.py",
    "src/zero\u200bwidth.py",
]
HOSTILE_MODEL_TEXT = (
    "lone \ud800 surrogate \x1b[31m red\n::warning::pwned\r##[error]x %0A::notice::y"
)


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _no_surrogates(value: Any) -> bool:
    return not any("\ud800" <= c <= "\udfff" for s in _strings(value) for c in s)


class _HostileText(FakeGemini):
    """Findings on every file whose message, category and all carry HOSTILE_MODEL_TEXT; the
    JSON escapes `\\ud800` so the client decodes a real lone surrogate."""

    def generate(self, model: str, request: dict[str, Any]) -> tuple[int, Any, Any]:
        status, body, fault = super().generate(model, request)
        if status != 200:
            return status, body, fault
        part = body["candidates"][0]["content"]["parts"][0]
        answer = json.loads(part["text"])
        answer["findings"] += [
            {
                "file": n,
                "line": 1,
                "end_line": 1,
                "severity": "low",
                "category": HOSTILE_MODEL_TEXT[:30],
                "message": HOSTILE_MODEL_TEXT,
            }
            for n in answer["reviewed"]
        ]
        part["text"] = json.dumps(answer)  # ensure_ascii: "\ud800" travels as an escape
        return status, body, fault


@pytest.mark.parametrize("fork", [False, True], ids=["check-run", "fork-commands"])
def test_hostile_names_and_model_text_are_data_everywhere(
    tmp_path: Path, github_server: FakeGitHub, fork: bool
) -> None:
    model = _HostileText().start()
    try:
        gate = Gate(tmp_path, github_server, model)
        gate.main({"src/ok.py": "x = 1\n"}, config={"review": {"gemini": FAST}})
        head = gate.push({name: f"v = {i}\n" for i, name in enumerate(HOSTILE_NAMES)})
        if fork:
            github_server.forbid_checks()
        run = gate.run(head, fork=fork)
        assert run.code in (0, 1), run.proc.stderr[-3000:]
        assert "Traceback" not in run.proc.stderr
        # Terminal: no escape sequence, no bidi override, no surrogate reaches it.
        shown = run.proc.stdout + run.proc.stderr
        assert "\x1b" not in shown and "\u202e" not in shown and _no_surrogates(shown)
        # The runner acts on gatebot's own commands only.
        assert run.foreign_commands() == [], run.foreign_commands()
        # (gatebot's own annotation commands carry the model text as escaped data: one line)
        assert all(line.count("::") >= 2 for _, line in runner_commands(shown))
        # Files: valid UTF-8 JSON; the summary and step summary inert too.
        v = run.verdict
        assert len(v["files"]) == len(HOSTILE_NAMES)
        summary = (gate.out / "summary.md").read_text("utf-8")
        step = (gate.runner / "step_summary.md").read_text("utf-8")
        for text in (summary, step):
            assert "\x1b" not in text and "\u202e" not in text and _no_surrogates(text)
            # Raw HTML only ever inside a code span, where Markdown shows it as text.
            assert "<img" not in re.sub(r"(`+)[^`]*?\1", "", text)
        outputs = (gate.runner / "output.txt").read_text()
        assert re.search(r"^verdict<<(\S+)\n(pass|fail)\n\1$", outputs, re.M), outputs
        # GitHub received valid UTF-8 JSON: no lone surrogate in any body it parsed.
        assert all(_no_surrogates(r.body) for r in github_server.requests)
        if not fork:
            check = run.check
            assert check.status == "completed"
            assert all(_no_surrogates(a) for a in check.annotations)
            assert check.summary is not None and "\x1b" not in check.summary
    finally:
        model.stop()


def test_sigterm_mid_review_completes_the_check_and_writes_the_verdict(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    gate = Gate(tmp_path, github_server, gemini_server)
    gate.main({"a.py": "x = 1\n"}, config={"review": {"gemini": {**FAST, "timeout_s": 120}}})
    head = gate.push({"a.py": "x = 2\n"})
    gemini_server.fail("slow", times=-1, delay_s=60.0)
    env = gate.env(head)
    skip = {gate.cache, gate.out, gate.runner, gate.tmp / "event.json"}
    before = snapshot(gate.tmp, skip)
    args = ["review", "--repo", str(gate.repo.path), "--out", str(gate.out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args, "--cache-dir", str(gate.cache)],
        env=env,
        cwd=gate.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not gemini_server.stats.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gemini_server.stats.calls, "the model call never started"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15  # did not wait for the 60 s call in flight
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert snapshot(gate.tmp, skip) == before
    (check,) = github_server.runs_for(head, CHECK)
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert (check.title or "").startswith("gatebot did not finish: stopped by SIGTERM")
    assert check.summary is not None and f"/actions/runs/{RUN_ID}" in check.summary
    v = json.loads((gate.out / "verdict.json").read_text())
    assert (v["verdict"], v["conclusion"]) == ("fail", "failure")
    assert "SIGTERM" in v["crash"]["message"]


@pytest.mark.parametrize(
    ("error", "title", "code"),
    [
        (KeyError("boom"), "gatebot crashed: KeyError", 3),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates"), "gatebot crashed: Unicode", 3),
        (ConfigError("review.x and review.y contradict"), "gatebot did not finish: review.x", 2),
    ],
    ids=["bug", "encoding", "gatebot-error"],
)
def test_an_exception_inside_the_review_closes_the_check(
    tmp_path: Path, github_server: FakeGitHub, error: Exception, title: str, code: int
) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo-org/inf-trader",
        "GITHUB_API_URL": github_server.url,
        "GITHUB_SERVER_URL": "https://github.invalid",
        "GITHUB_TOKEN": github_server.token,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    ctx = ActionsContext.from_env(env)
    assert ctx is not None
    head = "d" * 40
    ctx.start(head)
    out = tmp_path / "out"
    with (
        pytest.raises((Crashed, ConfigError)) as raised,
        closed_on_error(ctx, base_sha="b" * 40, head_sha=head, out_dir=out),
    ):
        raise error
    assert raised.value.exit_code == code
    (check,) = github_server.runs_for(head, CHECK)
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert (check.title or "").startswith(title)
    assert (
        check.summary is not None
        and f"https://github.invalid/octo-org/inf-trader/actions/runs/{RUN_ID}" in check.summary
    )
    v = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert v["verdict"] == "fail" and v["crash"] is not None
    assert (tmp_path / "out" / "summary.md").exists()


@pytest.mark.parametrize(
    ("review", "keys"),
    [
        (
            {"risk": {"lite_max_changed_lines": 50, "deep_min_changed_lines": 20}},
            ["risk.lite_max_changed_lines", "risk.deep_min_changed_lines"],
        ),
        (
            {"gemini": {"initial_delay_s": 30, "max_delay_s": 2}},
            ["gemini.initial_delay_s", "gemini.max_delay_s"],
        ),
        # Not contradictions, only odd: they run.
        ({"context_lines": 50, "budget_tokens": 2000, "max_findings": 1}, None),
        ({"large_file_bytes": 5_000_000, "max_file_bytes": 1_000}, None),
    ],
    ids=["lite-vs-deep", "backoff", "odd-but-fine", "sizes"],
)
def test_contradictory_base_config_names_the_keys(
    tmp_path: Path, review: dict[str, Any], keys: list[str] | None
) -> None:
    import yaml

    from tests.gitrepo import RepoBuilder
    from tests.security.harness import run_gatebot

    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({".github/gatebot.yml": yaml.safe_dump({"review": review}), "a.py": "x=1\n"})
    head = rb.commit({"a.py": "x = 2\n"}, branch="pr", parents=[base])
    args = ["review", "--repo", str(rb.path), "--base", base, "--head", head, "--out", "out"]
    proc = run_gatebot(args, clean_env(), tmp_path)
    assert "Traceback" not in proc.stderr
    if keys is None:
        assert proc.returncode in (0, 1), proc.stderr
        assert (tmp_path / "out" / "verdict.json").exists()
        return
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for key in keys:
        assert f"review.{key}" in proc.stderr
    assert not (tmp_path / "out" / "verdict.json").exists()
