"""Histories written by REAL review runs (run_review against the loopback Gemini server, real
pygit2 repositories) produce the figures a person computes by hand from the same runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import GatebotConfig
from bot.metrics.figures import figures, select
from bot.metrics.history import history_path, load_history, record_deploy
from bot.metrics.records import ReviewEntry
from bot.review.models import Metrics
from bot.review.pipeline import run_review
from bot.review.providers import select_provider
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder
from tests.metrics.conftest import Done

FAST = {"attempts": 2, "initial_delay_s": 0, "max_delay_s": 0, "jitter_s": 0, "timeout_s": 5,
        "item_retries": 1}  # fmt: skip


def _module(i: int, extra: str = "") -> str:
    return f'"""module {i}"""\n\n\ndef f{i}(x):\n    return x + {i}\n{extra}'


def _review(rb: RepoBuilder, head: str, cfg: GatebotConfig, cache: Path) -> Metrics:
    provider = select_provider(os.environ, cfg.review)
    return run_review(rb.path, "main", head, cfg, cache, provider).verdict.metrics


@pytest.fixture
def real_history(tmp_path: Path, gemini_server: FakeGemini) -> tuple[Path, list[Metrics], Path]:
    """The runbook's scenarios, then an outage: first review, re-run, re-push, rebase, degraded."""
    log = tmp_path / "optimizer.log"
    cfg = GatebotConfig(review={"gemini": FAST}, metrics={"run_log": str(log)})
    cache = tmp_path / "cache"
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({f"src/m{i}.py": _module(i) for i in range(12)} | {"README.md": "r\n"})
    changes = {f"src/m{i}.py": _module(i, "\ny = 2\n") for i in range(12)}
    head = rb.commit(changes, branch="feature", parents=[base])

    runs = [_review(rb, head, cfg, cache), _review(rb, head, cfg, cache)]
    repush = rb.commit({"src/m5.py": _module(5, "\ny = 3\n")}, branch="feature")
    runs.append(_review(rb, repush, cfg, cache))
    newer_main = rb.commit({"README.md": "newer\n"})
    rebased = rb.commit(
        changes | {"src/m5.py": _module(5, "\ny = 3\n")}, branch="rebased", parents=[newer_main]
    )
    runs.append(_review(rb, rebased, cfg, cache))
    outage = rb.commit({"src/new.py": _module(99)}, branch="rebased")
    gemini_server.fail("503", times=-1)
    runs.append(_review(rb, outage, cfg, cache))
    gemini_server.clear_faults()
    return cache, runs, log


def test_figures_from_real_runs_match_a_hand_computation(
    real_history: tuple[Path, list[Metrics], Path],
) -> None:
    cache, runs, _ = real_history
    history = load_history(history_path(cache))
    assert history.problems == []
    reviews = [e for e in history.entries if isinstance(e, ReviewEntry)]
    assert [e.metrics for e in reviews] == runs  # the history holds each run verbatim
    assert [e.degraded for e in reviews] == [False, False, False, False, True]

    # the scenarios did what they say, so the hand computation below is meaningful
    assert runs[0].api_calls >= 1 and runs[0].files_cached == 0
    assert runs[1].api_calls == 0 and runs[1].files_cached == 12
    assert runs[2].files_reviewed == 1 and runs[3].api_calls == 0

    fig = figures(select(history.entries, per_kind=20)).review
    calls = sum(m.api_calls for m in runs)
    cost = sum(m.cost_usd for m in runs)
    baseline = sum(m.baseline_cost_usd for m in runs)
    cached = sum(m.files_cached for m in runs)
    reviewed = sum(m.files_reviewed for m in runs)
    sent = sum(round(m.files_per_call * m.api_calls) for m in runs)
    durations = sorted(m.duration_s for m in runs)

    assert fig.runs == 5
    assert fig.api_calls == calls
    assert fig.baseline_api_calls == sum(m.baseline_api_calls for m in runs)
    assert fig.input_tokens == sum(m.input_tokens for m in runs) > 0
    assert fig.output_tokens == sum(m.output_tokens for m in runs)
    assert fig.cost_usd == pytest.approx(cost)
    assert fig.baseline_cost_usd == pytest.approx(baseline)
    assert fig.saved_usd == pytest.approx(baseline - cost)
    assert fig.cost_reduction == pytest.approx(1 - cost / baseline)
    assert fig.cache_hit_rate == pytest.approx(cached / (cached + reviewed))
    assert fig.files_per_call == pytest.approx(sent / calls)
    assert fig.degraded_runs == 1
    assert fig.duration_p50_s == durations[2]  # nearest rank: 3rd of 5
    assert fig.duration_p95_s == durations[4]
    # for a single run the rolling figures are the pipeline's own per-run numbers
    # (up to the pipeline's rounding: costs to 1e-6 USD, the rate to 1e-4)
    one, m0 = figures([reviews[0]]).review, runs[0]
    slack = 1e-4 + 1e-6 * (1 + m0.cost_usd / m0.baseline_cost_usd) / m0.baseline_cost_usd
    assert one.cost_reduction == pytest.approx(m0.cost_reduction_rate, abs=slack)
    assert one.files_per_call == pytest.approx(runs[0].files_per_call, abs=1e-3)


def test_run_log_has_the_runbook_line_per_real_run(
    real_history: tuple[Path, list[Metrics], Path],
) -> None:
    _, runs, log = real_history
    lines = log.read_text().splitlines()
    assert len(lines) == len(runs)
    for line, m in zip(lines, runs, strict=True):
        assert line.split(" ", 1)[1] == (
            f"api_calls: {m.api_calls}, cached_files: {m.files_cached}, "
            f"cache_hit_rate: {m.cache_hit_rate:.2f}, "
            f"cost_reduction_rate: {m.cost_reduction_rate:.2f}"
        )


def _gatebot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "metrics", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_check_on_real_history(
    real_history: tuple[Path, list[Metrics], Path],
    tmp_path: Path,
    gatebot: Callable[..., Done],
) -> None:
    cache, runs, _ = real_history
    record_deploy(
        cache,
        {"kind": "audit", "target": "inf", "ok": True, "duration_s": 1.0,
         "gtw_rtt_p50_ms": 2.0, "gtw_rtt_max_ms": 4.0},
        GatebotConfig().metrics,
    )  # fmt: skip
    prom = tmp_path / "textfile" / "gatebot.prom"
    done = _gatebot(
        "--cache-dir", str(cache), "--format", "json", "--check", "--textfile", str(prom),
        env={"GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the outage run used the fallback reviewer
    report: dict[str, Any] = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert report["summary"]["review"]["api_calls"] == sum(m.api_calls for m in runs)
    assert report["summary"]["deploy"]["gtw_rtt_p50_ms"] == 2.0
    firing = [a["id"] for a in report["alerts"]]
    assert "degraded_reviewer" in firing
    assert "::warning title=gatebot%3A degraded_reviewer::" in done.stdout
    assert "alert(s) firing" in done.stderr
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert families["gatebot_review_api_calls"].samples[0].value == sum(m.api_calls for m in runs)

    # tolerate the one degraded run: now every alert that still fires must be a real one
    cfg = tmp_path / "gatebot.yml"
    cfg.write_text("metrics:\n  alerts:\n    max_degraded_runs: 1\n    hit_rate_max: 1.0\n")
    done = gatebot("--cache-dir", str(cache), "--check", "--config", str(cfg))
    assert "::warning" not in done.stdout
    expected = [a for a in firing if a not in ("degraded_reviewer", "cache_hit_rate_high")]
    assert done.returncode == (1 if expected else 0), done.stderr
    for alert_id in expected:
        assert f"ALERT {alert_id}" in done.stderr
