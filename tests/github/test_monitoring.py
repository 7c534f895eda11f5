"""Alerts and trend charts at the top of the review's job summary (issue 6).

The history is written by real review runs (`gatebot review` as a subprocess, or run_review in
process), then the Actions outlet reads it back after the run recorded itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config.model import GatebotConfig
from bot.github.integration import ActionsContext
from bot.github.settings import ActionsSettings
from bot.metrics.history import history_path
from bot.review.pipeline import run_review
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.test_integration import actions_env, context
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({"a.py": "x = 1\n"})
    rb.commit({"a.py": "x = 2\n"}, branch="pr", parents=[base])
    return rb


def _review(tmp_path: Path, repo: RepoBuilder, cache: Path, **extra: str) -> tuple[int, str, str]:
    """`gatebot review` in a push job: no check run, so the job summary is the outlet."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("")  # the runner gives each step a fresh file
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "GEMINI_", "GOOGLE_", "GATEBOT_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        GITHUB_ACTIONS="true",
        GITHUB_EVENT_NAME="push",
        GITHUB_STEP_SUMMARY=str(summary),
        GATEBOT_POST_CHECK="false",
        GATEBOT_CACHE_DIR=str(cache),
        **extra,
    )
    args = ["--repo", str(repo.path), "--base", "main", "--head", "pr", "--out", "out"]
    p = subprocess.run(
        [sys.executable, "-m", "bot", "review", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return p.returncode, p.stdout, summary.read_text()


def _alert_lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln.startswith("::warning title=gatebot%3A ")]


def test_a_firing_alert_tops_the_summary_and_annotates_the_log(
    tmp_path: Path, repo: RepoBuilder
) -> None:
    cache = tmp_path / "cache"
    # No API key: the local reviewer stands in, and `degraded_reviewer` tolerates none of that.
    # Inside Actions that is "not reviewed by a model": the gate fails closed (exit 1).
    code, stdout, summary = _review(tmp_path, repo, cache)
    assert code == 1, stdout
    assert summary.startswith("> [!WARNING]\n> **gatebot alerts**\n")
    assert "> - `degraded_reviewer`: 1 review(s) fell back to the local reviewer" in summary
    charts = summary.index("```mermaid\nxychart-beta")
    review = summary.index("gatebot review")
    assert charts < review, "the alerts and charts come before the review's own report"
    (line,) = _alert_lines(stdout)
    assert line.startswith("::warning title=gatebot%3A degraded_reviewer::1 review(s) fell back")

    # The next run's charts include both runs: one x-axis label per recorded review.
    code, stdout, summary = _review(tmp_path, repo, cache)
    assert code == 1, stdout
    assert "`degraded_reviewer`: 2 review(s)" in summary.split("```mermaid")[0]
    assert summary.count("    bar [") == 2 and "    line [0, 0]" in summary  # two charts
    assert "degraded_reviewer::2 review(s)" in _alert_lines(stdout)[0]
    assert len(history_path(cache).read_text().splitlines()) == 2


def test_charts_without_alerts_when_none_fire(
    tmp_path: Path, repo: RepoBuilder, gemini_server: FakeGemini
) -> None:
    cache = tmp_path / "cache"
    code, stdout, summary = _review(
        tmp_path,
        repo,
        cache,
        GEMINI_API_KEY=gemini_server.api_key,
        GOOGLE_GEMINI_BASE_URL=gemini_server.url,
    )
    assert code == 0, stdout
    # One model review: the cost and hit-rate alerts wait for min_runs, nothing degraded.
    assert summary.startswith("```mermaid\nxychart-beta\n")
    assert "[!WARNING]" not in summary
    assert _alert_lines(stdout) == []
    assert summary.index("```mermaid") < summary.index("gatebot review")


def test_check_run_keeps_the_review_and_the_step_summary_gets_the_block(
    tmp_path: Path, repo: RepoBuilder, github_server: FakeGitHub
) -> None:
    cache = tmp_path / "cache"
    config = GatebotConfig()
    run = run_review(repo.path, "main", "pr", config, cache, None, env={})
    assert history_path(cache).exists()
    env = actions_env(tmp_path, github_server)
    out = io.StringIO()
    ctx = context(env, github_server, out)
    ctx.start(run.verdict.head_sha)
    code = ctx.finish(
        run.verdict, run.summary_md, tmp_path / "out", cache_dir=cache, metrics=config.metrics
    )
    assert code == 0
    (check,) = github_server.runs_for(run.verdict.head_sha, "gatebot / review")
    assert check.summary is not None and "mermaid" not in check.summary
    assert "[!WARNING]" not in check.summary
    step = (tmp_path / "summary.md").read_text()
    assert step.startswith("> [!WARNING]\n") and "```mermaid" in step
    assert check.summary.splitlines()[0] in step
    assert len(_alert_lines(out.getvalue())) == 1


def test_no_history_adds_nothing(tmp_path: Path, repo: RepoBuilder) -> None:
    cache = tmp_path / "cache"
    config = GatebotConfig()
    run = run_review(repo.path, "main", "pr", config, cache, None, env={})
    history_path(cache).unlink()  # e.g. the cache was not restored and the write failed
    (tmp_path / "summary.md").touch()
    settings = ActionsSettings.parse(
        {"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GATEBOT_POST_CHECK": "false"}
    )
    out = io.StringIO()
    ctx = ActionsContext(settings, stdout=out)
    ctx.start(run.verdict.head_sha)
    ctx.finish(run.verdict, run.summary_md, tmp_path / "out", cache_dir=cache)
    step = (tmp_path / "summary.md").read_text()
    assert step.startswith(run.summary_md.splitlines()[0])
    assert "mermaid" not in step and "[!WARNING]" not in step
    assert "::warning" not in out.getvalue()


def test_an_unreadable_history_is_a_warning_not_a_failure(
    tmp_path: Path, repo: RepoBuilder, gemini_server: FakeGemini
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    history_path(cache).mkdir()  # reading it raises IsADirectoryError
    code, stdout, summary = _review(
        tmp_path,
        repo,
        cache,
        GEMINI_API_KEY=gemini_server.api_key,
        GOOGLE_GEMINI_BASE_URL=gemini_server.url,
    )
    assert code == 0, stdout
    lines = [ln for ln in stdout.splitlines() if ln.startswith("::warning::")]
    assert any(ln.startswith("::warning::gatebot: run history not read: ") for ln in lines), stdout
    assert summary.startswith("## ✅ gatebot review: **pass**")
    assert "mermaid" not in summary
