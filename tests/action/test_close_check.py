"""action/close-check.sh over the wire: bash and curl against the loopback GitHub.

The script is what keeps a required check from waiting forever when the review cannot run or
finish; it must work with no Python at all, so it is tested here as the runner runs it (a bash
process with the step's environment), beside the act scenarios in test_review_under_act.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes.github import CheckRun, FakeGitHub
from tests.github.runner import parse_output_file
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "action" / "close-check.sh"
HEAD = "a" * 40
CHECK = "gatebot / review"


# What the script may use: a shell, curl, git and coreutils. No Python, jq or node: it must
# work where setting up Python failed, so the tests give it a PATH with nothing else on it.
TOOLS = ("bash", "curl", "git", "grep", "sed", "head", "tr", "date", "mktemp", "rm")


def _bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def _close(
    tmp_path: Path, github: FakeGitHub, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    out, summary = tmp_path / "output", tmp_path / "summary"
    out.write_text("")
    summary.write_text("")
    base = {
        "PATH": str(_bin(tmp_path)),
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": "octo-org/inf-trader",
        "GITHUB_SERVER_URL": "https://github.invalid",
        "GITHUB_RUN_ID": "77",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp_path),
        "GATEBOT_GITHUB_TOKEN": github.token,
        "GATEBOT_CHECK_NAME": CHECK,
        "GATEBOT_POST_CHECK": "true",
        "GATEBOT_TIMEOUT_MINUTES": "20",
        "GATEBOT_PR_HEAD_SHA": HEAD,
        **env,
    }
    done = subprocess.run(
        [str(_bin(tmp_path) / "bash"), str(SCRIPT)],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = [ln for ln in done.stdout.splitlines() if not ln.startswith("::add-mask::")]
    assert github.token not in "\n".join(shown) + done.stderr + summary.read_text()
    assert not list(tmp_path.glob("gatebot-close.*")), "the header file with the token is gone"
    return done, parse_output_file(out), summary.read_text()


def _open_run(github: FakeGitHub) -> CheckRun:
    run = CheckRun(4_000_000_777, "octo-org", "inf-trader", CHECK, HEAD, status="in_progress")
    github.runs[run.id] = run
    return run


@pytest.mark.parametrize(
    ("env", "title", "code"),
    [
        ({"GATEBOT_OUTCOME_PYTHON": "failure"}, "gatebot setup failed", "3"),
        ({"GATEBOT_OUTCOME_INSTALL": "failure"}, "gatebot setup failed", "3"),
        (
            {"GATEBOT_OUTCOME_PREPARE": "failure", "GATEBOT_PREPARE_STATUS": "2"},
            "gatebot could not run",
            "2",
        ),
        (
            {"GATEBOT_OUTCOME_PREPARE": "failure", "GATEBOT_PREPARE_STATUS": "3"},
            "gatebot could not run",
            "3",
        ),
        ({"GATEBOT_STATUS": "2"}, "gatebot could not run", "2"),
        ({"GATEBOT_STATUS": "3"}, "gatebot did not finish", "3"),
        ({"GATEBOT_STATUS": "126"}, "gatebot did not finish", "3"),
        ({}, "gatebot did not run", "3"),
    ],
)
def test_without_a_check_run_one_is_created_completed_as_failure(
    tmp_path: Path, github_server: FakeGitHub, env: dict[str, str], title: str, code: str
) -> None:
    _, outputs, summary = _close(tmp_path, github_server, **env)
    (run,) = github_server.runs_for(HEAD, CHECK)
    assert (run.status, run.conclusion, run.title) == ("completed", "failure", title)
    assert run.summary is not None and run.summary.startswith("Nothing was reviewed: ")
    assert run.details_url == "https://github.invalid/octo-org/inf-trader/actions/runs/77"
    assert run.completed_at
    assert outputs == {
        "exit-code": code,
        "conclusion": "failure",
        "posted": "check",
        "reason": outputs["reason"],
    }
    assert title in summary and "completed as `failure`" in summary
    (post,) = github_server.calls("POST", r"/check-runs$")
    assert post.headers["Authorization"] == f"Bearer {github_server.token}"


def test_a_timed_out_review_s_open_run_is_completed_by_id(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    run = _open_run(github_server)
    _, outputs, _ = _close(
        tmp_path,
        github_server,
        GATEBOT_STATUS="124",
        GATEBOT_CHECK_RUN_ID=str(run.id),
        GATEBOT_TIMEOUT_MINUTES="0.5",
    )
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.summary is not None and "timed out after 0.5 minutes" in run.summary
    assert not github_server.calls("POST", r"/check-runs$")
    assert outputs["exit-code"] == "3" and outputs["posted"] == "check"


def test_a_run_the_review_completed_itself_is_left_alone(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    run = _open_run(github_server)
    run.status, run.conclusion, run.title = "completed", "failure", "gatebot crashed: KeyError"
    _close(tmp_path, github_server, GATEBOT_STATUS="3", GATEBOT_CHECK_RUN_ID=str(run.id))
    assert run.title == "gatebot crashed: KeyError"
    assert not github_server.calls("PATCH") and not github_server.calls("POST")


def test_a_cancelled_run_is_completed_as_cancelled(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    run = _open_run(github_server)
    _, outputs, _ = _close(
        tmp_path, github_server, GATEBOT_CANCELLED="true", GATEBOT_CHECK_RUN_ID=str(run.id)
    )
    assert (run.status, run.conclusion) == ("completed", "cancelled")
    assert outputs["conclusion"] == "cancelled"


def test_a_finished_review_is_not_touched(tmp_path: Path, github_server: FakeGitHub) -> None:
    for status, verdict in (("0", "pass"), ("1", "fail")):
        _, outputs, summary = _close(
            tmp_path,
            github_server,
            GATEBOT_STATUS=status,
            GATEBOT_VERDICT=verdict,
            GATEBOT_POSTED="check",
            GATEBOT_CHECK_RUN_ID="4000000777",
        )
        assert outputs == {} and summary == ""
    assert not github_server.requests


def test_a_finished_review_whose_check_stayed_open_gets_its_verdict(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    run = _open_run(github_server)
    _, outputs, _ = _close(
        tmp_path,
        github_server,
        GATEBOT_STATUS="1",
        GATEBOT_VERDICT="fail",
        GATEBOT_POSTED="commands",  # the API failed when the review completed it
        GATEBOT_CHECK_RUN_ID=str(run.id),
    )
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert outputs == {"posted": "check"}
    run.status, run.conclusion = "in_progress", None
    _, outputs, _ = _close(
        tmp_path,
        github_server,
        GATEBOT_STATUS="0",
        GATEBOT_VERDICT="fail",  # approved by a maintainer: the review's exit 0 passes it
        GATEBOT_POSTED="commands",
        GATEBOT_CHECK_RUN_ID=str(run.id),
    )
    assert (run.status, run.conclusion) == ("completed", "success")


def test_post_check_off_or_no_permission_reports_in_the_log_and_summary(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    done, outputs, summary = _close(
        tmp_path, github_server, GATEBOT_OUTCOME_INSTALL="failure", GATEBOT_POST_CHECK="false"
    )
    assert not github_server.requests
    assert outputs["posted"] == "commands" and "post-check is off" in summary
    assert "::error title=gatebot setup failed::" in done.stdout

    github_server.forbid_checks()
    done, outputs, summary = _close(tmp_path, github_server, GATEBOT_OUTCOME_INSTALL="failure")
    assert outputs["posted"] == "commands" and "HTTP 403" in summary
    assert "::warning" in done.stdout and not github_server.runs


def test_a_hostile_check_name_stays_data(tmp_path: Path, github_server: FakeGitHub) -> None:
    name = 'gate "x" \\ back\ttab\nnew ünï'
    _close(tmp_path, github_server, GATEBOT_OUTCOME_INSTALL="failure", GATEBOT_CHECK_NAME=name)
    (run,) = github_server.runs.values()
    assert run.name == 'gate "x" \\ back tab\nnew ünï'


def test_outside_pull_requests_the_head_input_is_resolved_with_git(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    head = rb.commit({"a.py": "x = 1\n"}, branch="release")
    _close(
        tmp_path,
        github_server,
        GATEBOT_OUTCOME_INSTALL="failure",
        GATEBOT_PR_HEAD_SHA="",
        GATEBOT_HEAD="release",
        GATEBOT_WORKDIR=str(rb.path),
    )
    (run,) = github_server.runs.values()
    assert run.head_sha == head

    github_server.runs.clear()
    done, outputs, _ = _close(
        tmp_path,
        github_server,
        GATEBOT_OUTCOME_INSTALL="failure",
        GATEBOT_PR_HEAD_SHA="",
        GATEBOT_HEAD="--output=/tmp/x",  # an option, not a ref: never reaches git as one
        GATEBOT_WORKDIR=str(rb.path),
    )
    assert not github_server.runs and outputs["posted"] == "commands"
    assert "head commit is unknown" in done.stdout


def test_a_pr_command_that_never_opened_a_check_creates_none(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    """issue_comment runs on the default branch: GITHUB_SHA is not the PR's head."""
    _, outputs, summary = _close(
        tmp_path,
        github_server,
        GATEBOT_OUTCOME_INSTALL="failure",
        GATEBOT_PR_HEAD_SHA="",
        GITHUB_EVENT_NAME="issue_comment",
        GITHUB_SHA="b" * 40,
    )
    assert not github_server.runs and outputs["posted"] == "commands"
    assert "head commit is unknown" in summary


def test_a_repository_that_is_not_owner_name_is_never_put_in_a_url(
    tmp_path: Path, github_server: FakeGitHub
) -> None:
    _, outputs, _ = _close(
        tmp_path,
        github_server,
        GATEBOT_OUTCOME_INSTALL="failure",
        GITHUB_REPOSITORY="/tmp/origin.git",
    )
    assert not github_server.requests and outputs["posted"] == "commands"
