"""ActionsContext against the loopback GitHub server: the contract `gatebot review` uses."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.github.checks import ApiSettings
from bot.github.integration import ActionsContext
from bot.github.settings import ActionsSettings
from tests.fakes.github import FakeGitHub
from tests.github.runner import parse_output_file
from tests.github.verdicts import BASE, HEAD, verdict

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"


def actions_env(tmp_path: Path, server: FakeGitHub, event: str = "pull_request_opened") -> dict:
    event_path = tmp_path / "event.json"
    shutil.copy(EVENTS / f"{event}.json", event_path)
    for name in ("summary.md", "output.txt"):
        (tmp_path / name).touch()
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo-org/inf-trader",
        "GITHUB_API_URL": server.url,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_RUN_ID": "9001",
        "GATEBOT_GITHUB_TOKEN": server.token,
    }


def context(env: dict, server: FakeGitHub, out: io.StringIO, **api: object) -> ActionsContext:
    settings = ActionsSettings.parse(env)
    fast = ApiSettings(
        base_url=server.url,
        token=server.token,
        backoff_factor=0.0,
        secondary_rate_wait=0.0,
        seconds_between_writes=None,
        **api,  # type: ignore[arg-type]
    )
    return ActionsContext(settings, api=fast, stdout=out)


def test_posts_the_check_and_reports_everywhere(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server)
    out = io.StringIO()
    ctx = context(env, github_server, out)
    assert ctx.resolve_range(None, None) == (BASE, HEAD)
    ctx.start(HEAD)
    (run,) = github_server.runs_for(HEAD, "gatebot / review")
    assert run.status == "in_progress"
    assert run.details_url == "https://github.com/octo-org/inf-trader/actions/runs/9001"

    code = ctx.finish(verdict(3), "# full report\n", tmp_path / "out")
    assert code == 1
    assert run.status == "completed" and run.conclusion == "failure"
    assert len(run.annotations) == 3
    assert run.summary is not None and run.summary.startswith("# full report\n")
    assert run.title is not None and run.title.startswith("fail: 3 blocking findings")
    assert "::error" not in out.getvalue()  # annotations went to the check run, not the log
    outputs = parse_output_file(tmp_path / "output.txt")
    assert outputs["verdict"] == "fail"
    assert outputs["exit-code"] == "1"
    assert outputs["posted"] == "check"
    assert outputs["check-run-id"] == str(run.id)
    assert outputs["api-calls"] == "1" and outputs["cache-hit-rate"] == "0.5000"
    assert json.loads(Path(outputs["report"]).read_text())["verdict"] == "fail"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# full report\n\n### Notes\n")
    assert "Check run [gatebot / review](https://github.invalid/" in summary


def test_fork_403_falls_back_to_workflow_commands(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    github_server.forbid_checks()
    env = actions_env(tmp_path, github_server, "pull_request_fork")
    out = io.StringIO()
    ctx = context(env, github_server, out)
    ctx.resolve_range(None, None)
    ctx.start(HEAD)
    assert ctx.mode == "commands"
    v = verdict(2, provider="local")
    code = ctx.finish(v, "", tmp_path / "out")
    assert code == 1  # the job's exit code carries the verdict
    errors = [ln for ln in out.getvalue().splitlines() if ln.startswith("::error ")]
    assert len(errors) == 2
    assert errors[0].startswith("::error file=src/app.py,line=1,title=high%3A security::")
    # One attempt at the start; the outlet then knew better than to keep trying.
    assert len(github_server.calls("POST", "/check-runs$")) == 1
    assert not github_server.calls("PATCH")
    outputs = parse_output_file(tmp_path / "output.txt")
    assert outputs["posted"] == "commands" and outputs["verdict"] == "fail"
    summary = (tmp_path / "summary.md").read_text()
    assert "HTTP 403" in summary and "fork PR" in summary
    assert "local reviewer ran" in summary


def test_fallback_passes_when_the_verdict_passes(tmp_path: Path, github_server: FakeGitHub) -> None:
    github_server.forbid_checks()
    ctx = context(actions_env(tmp_path, github_server), github_server, io.StringIO())
    ctx.start(HEAD)
    assert ctx.finish(verdict(0, value="pass"), "", tmp_path / "out") == 0


def test_api_failure_after_retries_never_loses_the_result(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    env = actions_env(tmp_path, github_server)
    out = io.StringIO()
    ctx = context(env, github_server, out, retries=1)
    ctx.start(HEAD)
    github_server.fail("PATCH", "/check-runs/", 503, times=100)
    code = ctx.finish(verdict(1), "", tmp_path / "out")
    assert code == 1
    assert len(github_server.calls("PATCH")) == 2  # the first try and one retry
    assert out.getvalue().count("::error ") == 1  # the annotation still reaches the PR
    summary = (tmp_path / "summary.md").read_text()
    assert "gatebot review: **fail**" in summary
    assert "Check run not completed" in summary
    assert "too many 503 error responses" in summary
    assert (tmp_path / "out" / "verdict.json").exists()
    assert parse_output_file(tmp_path / "output.txt")["posted"] == "commands"


def test_start_outage_is_retried_at_finish(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server)
    out = io.StringIO()
    ctx = context(env, github_server, out, retries=0)
    github_server.fail("POST", "/check-runs$", 500)
    ctx.start(HEAD)  # never raises
    assert not github_server.runs
    assert "too many 500 error responses" in out.getvalue()
    assert ctx.finish(verdict(0, value="pass"), "", tmp_path / "out") == 0
    (run,) = github_server.runs_for(HEAD)
    assert run.conclusion == "success"


def test_neutral_verdict_is_a_neutral_check(tmp_path: Path, github_server: FakeGitHub) -> None:
    ctx = context(actions_env(tmp_path, github_server), github_server, io.StringIO())
    ctx.start(HEAD)
    v = verdict(0, value="neutral", degraded=True, degraded_reason="Gemini quota exhausted")
    assert ctx.finish(v, "", tmp_path / "out") == 0
    (run,) = github_server.runs_for(HEAD)
    assert run.conclusion == "neutral"
    assert run.summary is not None and "Gemini quota exhausted" in run.summary


def test_post_check_off_makes_no_api_calls(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server) | {"GATEBOT_POST_CHECK": "false"}
    out = io.StringIO()
    ctx = context(env, github_server, out)
    ctx.start(HEAD)
    assert ctx.finish(verdict(1), "", tmp_path / "out") == 1
    assert github_server.requests == []
    assert "::error file=src/app.py" in out.getvalue()


def test_sarif_file(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server) | {"GATEBOT_SARIF": str(tmp_path / "r.sarif")}
    ctx = context(env, github_server, io.StringIO())
    ctx.start(HEAD)
    ctx.finish(verdict(2), "", tmp_path / "out")
    doc = json.loads((tmp_path / "r.sarif").read_text())
    assert len(doc["runs"][0]["results"]) == 2
    assert parse_output_file(tmp_path / "output.txt")["sarif"] == str(tmp_path / "r.sarif")


def test_other_events_need_explicit_range(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server) | {"GITHUB_EVENT_NAME": "workflow_dispatch"}
    ctx = context(env, github_server, io.StringIO())
    with pytest.raises(UsageError, match="--base and --head required"):
        ctx.resolve_range(None, None)
    assert ctx.resolve_range("main", "abc") == ("main", "abc")


def test_explicit_range_wins_over_the_payload(tmp_path: Path, github_server: FakeGitHub) -> None:
    ctx = context(actions_env(tmp_path, github_server), github_server, io.StringIO())
    assert ctx.resolve_range("v1.0", None) == ("v1.0", HEAD)


def test_from_env_outside_actions_is_none() -> None:
    assert ActionsContext.from_env({"GITHUB_TOKEN": "x"}) is None


def test_from_env_masks_secrets(
    tmp_path: Path, github_server: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    env = actions_env(tmp_path, github_server) | {"GEMINI_API_KEY": "AIzaSecretKey123"}
    ctx = ActionsContext.from_env(env)
    assert ctx is not None
    printed = capsys.readouterr().out.splitlines()
    assert f"::add-mask::{github_server.token}" in printed
    assert "::add-mask::AIzaSecretKey123" in printed


def test_bad_flag_is_named(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server) | {"GATEBOT_POST_CHECK": "maybe"}
    with pytest.raises(UsageError, match="GATEBOT_POST_CHECK"):
        ActionsContext.from_env(env)


def test_abandon_closes_an_unfinished_check_as_failure(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    env = actions_env(tmp_path, github_server) | {"GITHUB_RUN_ID": "777"}
    ctx = context(env, github_server, io.StringIO())
    ctx.start(HEAD)  # … and then the review was killed
    later = context(env, github_server, io.StringIO())
    assert later.abandon(HEAD, "timed out after 20 minutes") is True
    (run,) = github_server.runs_for(HEAD)
    # Fail closed: neutral would pass a required check although nothing was decided.
    assert run.status == "completed" and run.conclusion == "failure"
    assert run.title == "gatebot did not finish: timed out after 20 minutes"
    assert run.summary is not None and "timed out after 20 minutes" in run.summary
    assert "/actions/runs/777" in run.summary  # the run's log
    assert "did not finish" in (tmp_path / "summary.md").read_text()
    # Nothing left open: a second call changes nothing.
    assert later.abandon(HEAD, "again") is False
    assert run.conclusion == "failure"


def test_abandon_can_say_timed_out(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server)
    context(env, github_server, io.StringIO()).start(HEAD)
    assert context(env, github_server, io.StringIO()).abandon(HEAD, "slow", "timed_out")
    (run,) = github_server.runs_for(HEAD)
    assert run.conclusion == "timed_out"


def test_abandon_leaves_a_finished_check_alone(tmp_path: Path, github_server: FakeGitHub) -> None:
    env = actions_env(tmp_path, github_server)
    ctx = context(env, github_server, io.StringIO())
    ctx.start(HEAD)
    ctx.finish(verdict(0, value="pass"), "", tmp_path / "out")
    assert context(env, github_server, io.StringIO()).abandon(HEAD, "crash") is False
    (run,) = github_server.runs_for(HEAD)
    assert run.conclusion == "success"
