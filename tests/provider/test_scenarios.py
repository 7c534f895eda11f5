"""The runbook's benchmark scenarios, end to end: real pygit2 repositories, the real pipeline,
google-genai talking to the loopback Gemini server. Targets from shared/DESIGN.md §7."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config.model import GatebotConfig
from bot.review.cost import baseline_usage
from bot.review.models import Verdict
from bot.review.pipeline import ReviewRun, run_review
from bot.review.providers import select_provider
from tests.fakes.gemini import FakeGemini
from tests.provider.prgen import FEATURE, Scenario, build

ROOT = Path(__file__).resolve().parents[2]
FAST = {"attempts": 2, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.01}


def config(**review: Any) -> GatebotConfig:
    return GatebotConfig.model_validate({"review": {"gemini": {**FAST, "timeout_s": 5}, **review}})


def review(sc: Scenario, cache: Path, cfg: GatebotConfig) -> ReviewRun:
    provider = select_provider(os.environ, cfg.review)
    assert provider is not None
    return run_review(sc.path, "main", FEATURE, cfg, cache, provider)


@pytest.fixture
def sc(tmp_path: Path) -> Scenario:
    return build(tmp_path / "repo", files=50)


def test_first_review_repush_rebase_rerun(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg, cache = config(), tmp_path / "cache"

    first = review(sc, cache, cfg).verdict
    m = first.metrics
    assert first.verdict == "pass" and first.provider == "gemini" and not first.degraded
    assert m.files_total == m.files_reviewed == 50
    assert m.baseline_api_calls == 50
    # one call per tier the PR touches: moving the 36 lite files into the Flash call would
    # cost more than the call it saves, so they stay on Flash-Lite; ≥ 90% below naive cost,
    # thinking included on both sides
    assert m.api_calls == gemini_server.stats.generate_calls == 3
    assert {c.model for c in gemini_server.stats.calls} == {
        "gemini-3.5-flash-lite",
        "gemini-3.8-flash",
        "gemini-3.1-pro-preview",
    }
    assert m.models == {
        "lite": "gemini-3.5-flash-lite",
        "standard": "gemini-3.8-flash",
        "deep": "gemini-3.1-pro-preview",
    }
    assert m.api_calls <= 0.06 * m.baseline_api_calls
    assert m.cost_reduction_rate >= 0.90 and m.savings_usd > 0
    assert m.thoughts_tokens == gemini_server.stats.thoughts_tokens > 0
    assert m.files_per_call >= 5
    # the compact answer: a clean file costs its number in `reviewed` (about a token), not an
    # echoed {path, part, findings: []} entry (~14 tokens a file, 814 output tokens here before)
    assert m.output_tokens == gemini_server.stats.output_tokens
    # plus the walkthrough (review.walkthrough, on by default): one short line per file, in the
    # same calls (tests/provider/test_gemini_provider.py checks the compact answer without it)
    walkthrough = 25 * m.files_reviewed
    assert (
        m.output_tokens - m.thoughts_tokens
        <= 1.5 * m.files_reviewed + walkthrough + 10 * m.api_calls
    )
    # hunks with context, not whole files: a fraction of the naive input
    naive = baseline_usage([(p, "\n".join(ls) + "\n") for p, ls in sc.pr_files.items()])
    assert m.input_tokens <= 0.2 * naive.input_tokens

    # a re-push that changes one file: exactly that file is asked again
    gemini_server.reset_stats()
    path, _ = sc.repush_one()
    second = review(sc, cache, cfg).verdict
    assert gemini_server.stats.paths_asked() == [path]
    assert second.metrics.api_calls == 1
    assert second.metrics.files_cached == 49
    assert second.metrics.cost_reduction_rate >= 0.95  # one risky file, on Pro

    # a rebase of the PR onto a newer main: nothing new to ask
    gemini_server.reset_stats()
    sc.rebase_onto_newer_main()
    third = review(sc, cache, cfg).verdict
    assert gemini_server.stats.generate_calls == 0
    assert third.metrics.api_calls == 0 and third.metrics.files_cached == 50
    assert third.base_sha != first.base_sha
    assert third.metrics.cost_reduction_rate == 1.0

    # a re-run: nothing either
    gemini_server.reset_stats()
    fourth = review(sc, cache, cfg).verdict
    assert gemini_server.stats.generate_calls == 0 and fourth.metrics.cache_hit_rate == 1.0

    # over the four runs: ≥ 95% fewer calls and ≥ 90% lower cost than the naive before
    runs = [first, second, third, fourth]
    calls = sum(v.metrics.api_calls for v in runs)
    naive_calls = sum(v.metrics.baseline_api_calls for v in runs)
    cost = sum(v.metrics.cost_usd for v in runs)
    naive_cost = sum(v.metrics.baseline_cost_usd for v in runs)
    assert calls <= 0.05 * naive_calls
    assert cost <= 0.10 * naive_cost


def test_a_merge_tolerance_trades_a_little_money_for_a_call(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    # review.merge_max_usd lets the lite call ride in the Flash call although that costs a
    # little more than the call it saves: one call fewer, a few points of the saving given up
    calls_first = config(merge_max_usd=0.01)
    m = review(sc, tmp_path / "cache", calls_first).verdict.metrics
    assert m.api_calls == 2
    assert {c.model for c in gemini_server.stats.calls} == {
        "gemini-3.8-flash",
        "gemini-3.1-pro-preview",
    }
    assert m.cost_reduction_rate >= 0.88


def test_a_finding_from_the_model_fails_the_gate(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    path = sc.pr_paths[10]
    lines = [*sc.pr_files[path], "", "value = eval(source)  # FIXME-SECURITY"]
    sc.rb.commit({path: "\n".join(lines) + "\n"}, branch=FEATURE)
    v = review(sc, tmp_path / "cache", config()).verdict
    assert v.verdict == "fail"
    (finding,) = [f for r in v.files for f in r.findings if f.source == "model"]
    assert finding.path == path and finding.line == len(lines) and finding.in_diff


def _cli(sc: Scenario, out: Path, cache: Path, cfg_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GATEBOT_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = ["--repo", str(sc.path), "--base", "main", "--head", FEATURE, "--out", str(out)]
    args += ["--cache-dir", str(cache), "--config", str(cfg_file)]
    return subprocess.run(
        [sys.executable, "-m", "bot", "review", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _inject(server: FakeGemini, fault: str) -> None:
    if fault == "auth":
        server.api_key = "the-key-was-rotated"
    else:
        server.fail(fault, times=-1, retry_delay="0.05s", delay_s=3)


def _heal(server: FakeGemini) -> None:
    server.clear_faults()
    server.api_key = FakeGemini().api_key
    server.reset_stats()


FAILING = {"gemini": {**FAST, "timeout_s": 0.5, "max_retry_delay_s": 1}}


@pytest.mark.parametrize("fault", ["503", "500", "429", "slow", "auth", "truncated"])
def test_provider_failure_fails_closed_degraded_and_keeps_the_cache(
    tmp_path: Path, gemini_server: FakeGemini, fault: str
) -> None:
    sc = build(tmp_path / "repo", files=10, base_modules=12)
    cfg, cache = config(**FAILING), tmp_path / "cache"
    assert review(sc, cache, cfg).verdict.verdict == "pass"

    path, _ = sc.repush_one()
    gemini_server.reset_stats()
    _inject(gemini_server, fault)
    v = review(sc, cache, cfg).verdict
    # (a model that keeps answering truncated JSON is blamed on the content: a prompt can ask
    # for such answers, so fail-open for outages must not pass it)
    assert (v.verdict, v.conclusion) == ("fail", "failure")
    cause = "content" if fault == "truncated" else "provider"
    assert {f.not_reviewed.cause for f in v.files if f.not_reviewed} == {cause}
    assert v.degraded and v.degraded_reason
    assert v.provider == "gemini+local"
    assert v.uncovered == [path]
    assert v.metrics.files_cached == 9

    # the provider is back: only the uncovered file is asked, the cache lost nothing
    _heal(gemini_server)
    back = review(sc, cache, cfg).verdict
    assert gemini_server.stats.paths_asked() == [path]
    assert back.verdict == "pass" and not back.degraded and back.metrics.files_cached == 9


@pytest.mark.parametrize(("unreviewed", "code"), [("failure", 1), ("neutral", 0)])
def test_the_cli_fails_closed_on_an_outage_unless_opted_out_and_names_what_is_uncovered(
    tmp_path: Path, gemini_server: FakeGemini, unreviewed: str, code: int
) -> None:
    sc = build(tmp_path / "repo", files=6, base_modules=8)
    cfg_file = tmp_path / "gatebot.yml"
    cfg_file.write_text(json.dumps({"review": {**FAILING, "unreviewed": unreviewed}}))
    gemini_server.fail("503", times=-1)
    done = _cli(sc, tmp_path / "out", tmp_path / "cache", cfg_file)
    assert done.returncode == code, done.stderr
    v = Verdict.model_validate_json((tmp_path / "out" / "verdict.json").read_text())
    expected = "fail" if unreviewed == "failure" else "neutral"
    assert v.verdict == expected and v.degraded
    assert sorted(v.uncovered) == sorted(sc.pr_paths)
    assert gemini_server.api_key not in done.stdout + done.stderr
    assert f"gatebot review: {expected}" in done.stdout
