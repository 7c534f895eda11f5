"""The spend caps (`review.max_calls`, `review.max_usd`; bot/review/budget.py) reached in the
middle of a run, over the loopback Gemini server: the calls the server saw stop at the cap,
what was reviewed stays reviewed (and cached), the rest is "not reviewed" with cause `budget`,
and the run does not pass — not even with `review.unreviewed: neutral`, which opens outages
only. One file per call and one call at a time make "mid-run" exact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.config.model import GatebotConfig
from bot.review.cost import DEFAULT_PRICES, priced
from bot.review.pipeline import ReviewRun, run_review
from bot.review.providers import select_provider
from bot.review.types import Usage
from tests.fakes.gemini import Call, FakeGemini
from tests.gitrepo import RepoBuilder
from tests.provider.prgen import FEATURE

FILES = 6
SEQUENTIAL = {
    "attempts": 2,
    "initial_delay_s": 0.01,
    "max_delay_s": 0.02,
    "jitter_s": 0.0,
    "timeout_s": 5,
    "concurrency": 1,
}


def config(**review: Any) -> GatebotConfig:
    return GatebotConfig.model_validate(
        {
            "review": {
                "gemini": SEQUENTIAL,
                "max_files_per_call": 1,
                "unreviewed": "neutral",  # fail-open for outages: a cap must still fail
                **review,
            }
        }
    )


def review(repo: Path, cache: Path, cfg: GatebotConfig) -> ReviewRun:
    provider = select_provider(os.environ, cfg.review)
    assert provider is not None
    return run_review(repo, "main", FEATURE, cfg, cache, provider)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A PR of FILES ordinary Python edits: FILES model calls at one file per call."""
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({f"src/m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(FILES)})
    rb.commit(
        {f"src/m{i}.py": f"def f{i}(x):\n    return x * {i} + 1\n" for i in range(FILES)},
        branch=FEATURE,
        parents=[base],
    )
    return rb.path


def usd(call: Call) -> float:
    c = call
    usage = Usage(1, c.prompt_tokens, c.output_tokens, c.cached_tokens, c.thoughts_tokens)
    return priced(DEFAULT_PRICES[call.model], usage)


def _not_reviewed_for_budget(run: ReviewRun, cap: str) -> list[str]:
    v = run.verdict
    assert v.verdict == "fail", run.summary_md  # fail-open (neutral) does not open a cap
    over = [f for f in v.files if f.not_reviewed is not None]
    assert over, "a cap reached mid-run must leave files not reviewed"
    for f in over:
        assert f.not_reviewed is not None and f.not_reviewed.cause == "budget", f
        assert cap in f.not_reviewed.reason
    assert v.metrics.files_over_budget == len(over)
    return [f.path for f in over]


def test_the_call_cap_reached_mid_run(
    repo: Path, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    run = review(repo, tmp_path / "cache", config(max_calls=2))
    # The server saw exactly the cap: no call beyond it was sent.
    assert gemini_server.stats.generate_calls == 2 and gemini_server.stats.ok_calls == 2
    assert run.verdict.metrics.api_calls == 2
    over = _not_reviewed_for_budget(run, "review.max_calls = 2")
    reviewed = [f.path for f in run.verdict.files if f.covered]
    assert len(reviewed) == 2 and len(over) == FILES - 2
    assert sorted(gemini_server.stats.paths_asked()) == sorted(reviewed)
    # Nothing reviewed is lost: without the cap, the next run asks only for the rest.
    gemini_server.reset_stats()
    again = review(repo, tmp_path / "cache", config())
    assert again.verdict.verdict == "pass" and again.verdict.metrics.files_cached == 2
    assert sorted(gemini_server.stats.paths_asked()) == sorted(over)


def test_the_call_cap_after_a_transient_outage_is_still_the_budgets(
    repo: Path, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    # A 503 the SDK's retry got past is no outage of the files the cap left: they are the
    # budget's, which fail-open never passes.
    gemini_server.fail("503", times=1)
    run = review(repo, tmp_path / "cache", config(max_calls=2))
    assert gemini_server.stats.ok_calls == 2
    _not_reviewed_for_budget(run, "review.max_calls = 2")


def test_the_dollar_cap_reached_mid_run(
    repo: Path, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    # What one call costs here, measured at the server on a run without a cap.
    review(repo, tmp_path / "measure", config())
    one = max(usd(c) for c in gemini_server.stats.calls)
    gemini_server.reset_stats()
    cap = 2.5 * one
    run = review(repo, tmp_path / "cache", config(max_usd=cap))
    calls = gemini_server.stats.calls
    assert 1 <= len(calls) < FILES
    # No call was sent once what had been spent reached the cap (calls are sequential here).
    spent = 0.0
    for c in calls:
        assert spent < cap, f"a call was sent with ${spent:.8f} of ${cap:.8f} spent"
        spent += usd(c)
    assert run.verdict.metrics.cost_usd == pytest.approx(spent, abs=2e-6)
    over = _not_reviewed_for_budget(run, "review.max_usd")
    assert len(over) == FILES - len(calls)
