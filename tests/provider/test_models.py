"""Models that exist today: tiers resolve against the API's list, a model that vanishes
mid-run hands its files to the fallback, costs are the documented prices, and spend caps
never pass what they did not review. All over the loopback Gemini server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.model import GatebotConfig
from bot.onboarding.init import render_config
from bot.review.cost import DEFAULT_PRICES, priced
from bot.review.pipeline import ReviewRun, run_review
from bot.review.providers import select_provider
from bot.review.providers.resolve import LIST_FILE
from bot.review.types import Usage
from tests.fakes.gemini import RETIRED, FakeGemini, FakeModel
from tests.gitrepo import RepoBuilder
from tests.provider.prgen import FEATURE, Scenario, build

FAST = {"attempts": 2, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.01}


def config(**review: Any) -> GatebotConfig:
    return GatebotConfig.model_validate({"review": {"gemini": {**FAST, "timeout_s": 5}, **review}})


def review(path: Path, cache: Path, cfg: GatebotConfig) -> ReviewRun:
    provider = select_provider(os.environ, cfg.review)
    assert provider is not None
    return run_review(path, "main", FEATURE, cfg, cache, provider)


@pytest.fixture
def sc(tmp_path: Path) -> Scenario:
    return build(tmp_path / "repo", files=12, base_modules=16)


def test_the_fake_serves_todays_lineup_and_404s_the_retired(gemini_server: FakeGemini) -> None:
    from google import genai

    client = genai.Client(api_key=gemini_server.api_key)
    names = {m.name for m in client.models.list(config={"page_size": 5})}  # several pages
    assert "models/gemini-3.8-flash" in names and "models/gemini-3.1-pro-preview" in names
    assert not {f"models/{r}" for r in RETIRED} & names
    for retired in RETIRED:
        with pytest.raises(genai.errors.ClientError) as info:
            client.models.generate_content(model=retired, contents="hi")
        assert info.value.code == 404


def test_a_default_config_reviews_every_file_on_live_models(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    v = review(sc.path, tmp_path / "cache", config()).verdict
    assert v.verdict == "pass" and not v.degraded and v.uncovered == []
    assert v.metrics.files_reviewed == 12
    used = {c.model for c in gemini_server.stats.calls}
    assert used <= {"gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-3.1-pro-preview"}
    assert all(c.status == 200 for c in gemini_server.stats.calls)
    # Gemini 3 requests carry thinking_level, never a budget or a temperature
    for call in gemini_server.stats.calls:
        thinking = call.generation_config["thinkingConfig"]
        assert (thinking.get("thinking_level") or thinking.get("thinkingLevel")) == "LOW"
        assert "temperature" not in call.generation_config
    assert gemini_server.stats.list_calls == 1


def test_an_init_generated_config_reviews_every_file(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    text = render_config(None)
    data = yaml.safe_load(text)
    assert data["review"]["models"] == {"lite": "flash-lite", "standard": "flash", "deep": "pro"}
    cfg = GatebotConfig.model_validate(data)
    v = review(sc.path, tmp_path / "cache", cfg).verdict
    assert v.verdict == "pass" and v.uncovered == [] and v.metrics.files_reviewed == 12


def test_a_retired_pinned_id_is_routed_around_and_said(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = config(models={"lite": "gemini-2.0-flash-lite", "standard": "gemini-2.5-flash"})
    run = review(sc.path, tmp_path / "cache", cfg)
    assert run.verdict.uncovered == [] and run.verdict.verdict == "pass"
    assert not {c.model for c in gemini_server.stats.calls} & set(RETIRED)
    assert any("review.models.standard = gemini-2.5-flash" in w for w in run.warnings)


FLASH_TIERS = {"lite": "flash", "standard": "flash", "deep": "flash"}


def _flash_listed_then_retired(sc: Scenario, tmp_path: Path, gemini_server: FakeGemini) -> Path:
    """A cache whose models list says 3.8 Flash exists (read at run start), then Google shuts
    it down; the server's counts start afresh."""
    cache = tmp_path / "cache"
    assert review(sc.path, tmp_path / "warm", config(models=FLASH_TIERS)).verdict.verdict == "pass"
    cache.mkdir()
    (tmp_path / "warm" / LIST_FILE).replace(cache / LIST_FILE)
    gemini_server.retire("gemini-3.8-flash")
    gemini_server.reset_stats()
    return cache


def test_a_model_retired_mid_run_hands_its_files_to_the_fallback(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cache = _flash_listed_then_retired(sc, tmp_path, gemini_server)
    cfg = config(models=FLASH_TIERS)
    run = review(sc.path, cache, cfg)
    v, m = run.verdict, run.verdict.metrics
    assert v.verdict == "pass" and v.uncovered == [] and m.files_reviewed == 12
    statuses = [(c.model, c.status) for c in gemini_server.stats.calls]
    assert statuses[0] == ("gemini-3.8-flash", 404)
    assert {mod for mod, st in statuses if st == 200} == {"gemini-3.7-flash"}
    (moved,) = m.model_fallbacks
    assert (moved.from_model, moved.to_model, moved.files) == (
        "gemini-3.8-flash",
        "gemini-3.7-flash",
        12,
    )
    assert all(f.model == "gemini-3.7-flash" for f in v.files)
    assert "gemini-3.8-flash" in run.summary_md and "gemini-3.7-flash" in run.summary_md
    # the next run knows 3.8 is gone: straight to 3.7, and what 3.7 reviewed is a cache hit
    gemini_server.reset_stats()
    again = review(sc.path, cache, cfg).verdict
    assert gemini_server.stats.generate_calls == 0
    assert (
        again.metrics.files_cached == 12 and again.metrics.models["standard"] == "gemini-3.7-flash"
    )


def test_a_model_found_gone_is_not_asked_again_by_the_later_batches(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cache = _flash_listed_then_retired(sc, tmp_path, gemini_server)
    # 12 files, 3 per call, one call at a time: four batches planned for 3.8 Flash.
    cfg = GatebotConfig.model_validate(
        {
            "review": {
                "gemini": {**FAST, "timeout_s": 5, "concurrency": 1},
                "models": FLASH_TIERS,
                "max_files_per_call": 3,
            }
        }
    )
    run = review(sc.path, cache, cfg)
    v, m = run.verdict, run.verdict.metrics
    assert v.verdict == "pass" and v.uncovered == [] and m.files_reviewed == 12
    statuses = [(c.model, c.status) for c in gemini_server.stats.calls]
    assert statuses.count(("gemini-3.8-flash", 404)) == 1, statuses  # the first batch only
    assert {mod for mod, st in statuses if st == 200} == {"gemini-3.7-flash"}
    assert sum(f.files for f in m.model_fallbacks) == 12
    assert all(f.to_model == "gemini-3.7-flash" for f in m.model_fallbacks)


def test_a_long_fallback_walk_is_not_cut_short_by_the_automatic_call_cap(
    tmp_path: Path, gemini_server: FakeGemini
) -> None:
    # One lite call (automatic cap: 2 x 1 + 4 = 6 requests) whose tier's models and the next
    # tier's all answer 404 although listed: the seventh model asked, deep's, reviews it.
    # Before, the cap refused that request and the file ended "not reviewed".
    gone = [
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
        "gemini-2.5-flash-lite",
        "gemini-3.8-flash",
        "gemini-3.7-flash",
        "gemini-3.6-flash",
    ]
    for model in gone:
        gemini_server.fail("404", times=-1, model=model)
    rb = RepoBuilder(tmp_path / "small")
    base = rb.commit({"src/util.py": "def add(a, b):\n    return a + b\n"})
    rb.commit({"src/util.py": "def add(a, b):\n    return b + a\n"}, branch=FEATURE, parents=[base])
    run = review(rb.path, tmp_path / "cache", config())
    v, m = run.verdict, run.verdict.metrics
    assert v.verdict == "pass" and v.uncovered == [], run.summary_md
    assert [c.model for c in gemini_server.stats.calls] == [*gone, "gemini-3.1-pro-preview"]
    assert v.files[0].model == "gemini-3.1-pro-preview"
    assert [f.from_model for f in m.model_fallbacks] == gone
    assert m.api_calls_cap == 6


def test_when_no_model_is_left_the_files_are_not_reviewed(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    for name in list(gemini_server.models):
        if "pro" in name:
            gemini_server.retire(name)
    cfg = config(models={"lite": "pro", "standard": "pro", "deep": "pro"})
    run = review(sc.path, tmp_path / "cache", cfg)
    assert run.verdict.verdict != "pass"
    assert sorted(run.verdict.uncovered) == sorted(sc.pr_paths)


def test_reported_cost_is_tokens_times_the_documented_price(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    m = review(sc.path, tmp_path / "cache", config()).verdict.metrics
    expected = 0.0
    for c in gemini_server.stats.calls:
        usage = Usage(1, c.prompt_tokens, c.output_tokens, c.cached_tokens, c.thoughts_tokens)
        expected += priced(DEFAULT_PRICES[c.model], usage)
    assert gemini_server.stats.thoughts_tokens > 0  # thinking is in there, billed as output
    assert m.cost_usd == pytest.approx(expected, abs=2e-6)  # metrics round to 6 places
    assert m.cost_known
    assert m.savings_usd == pytest.approx(m.baseline_cost_usd - m.cost_usd, abs=2e-6)


def test_a_gate_dearer_than_naive_reports_negative_savings(
    tmp_path: Path, gemini_server: FakeGemini
) -> None:
    rb = RepoBuilder(tmp_path / "small")
    base = rb.commit({"src/auth.py": "def check(user):\n    return user.ok\n"})
    rb.commit(
        {"src/auth.py": "def check(user):\n    return user.ok and user.active\n"},
        branch=FEATURE,
        parents=[base],
    )
    run = review(rb.path, tmp_path / "cache", config())
    m = run.verdict.metrics
    assert m.models["deep"] == "gemini-3.1-pro-preview" and m.api_calls == 1
    assert m.cost_usd > m.baseline_cost_usd > 0
    assert m.savings_usd < 0 and m.cost_reduction_rate < 0
    assert "a cost increase of" in run.summary_md
    assert "Saved vs baseline: $" not in run.summary_md


def test_an_unknown_model_reports_unknown_cost(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    gemini_server.lineup["gemini-4-argon"] = FakeModel("gemini-4-argon")
    gemini_server.models.add("gemini-4-argon")
    cfg = config(models={"lite": "gemini-4-argon", "standard": "gemini-4-argon", "deep": "pro"})
    run = review(sc.path, tmp_path / "cache", cfg)
    m = run.verdict.metrics
    assert run.verdict.uncovered == []
    assert not m.cost_known and m.unpriced_models == ["gemini-4-argon"]
    assert m.cost_reduction_rate == 0.0
    assert any("cost unknown: no price for gemini-4-argon" in w for w in run.warnings)
    assert "unknown" in run.summary_md
    # with a price configured it is known again
    priced_cfg = config(
        models={"lite": "gemini-4-argon", "standard": "gemini-4-argon", "deep": "pro"},
        prices={"gemini-4-argon": {"input": 1.0, "output": 5.0, "cached_input": 0.1}},
    )
    again = review(sc.path, tmp_path / "cache2", priced_cfg).verdict.metrics
    assert again.cost_known and again.cost_usd > 0


@pytest.mark.parametrize("cap", [{"max_calls": 1}, {"max_usd": 0.0001}])
def test_past_a_spend_cap_files_are_not_reviewed(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini, cap: dict[str, Any]
) -> None:
    run = review(sc.path, tmp_path / "cache", config(**cap))
    v = run.verdict
    assert v.verdict != "pass"
    assert v.uncovered, "a cap must leave files not reviewed, never silently passed"
    assert all("budget" in (f.reason or "") for f in v.files if not f.covered)
    assert v.metrics.api_calls <= cap.get("max_calls", 1)
    assert v.metrics.files_over_budget == len(v.uncovered)


def test_the_models_list_is_cached_with_a_ttl(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cache = tmp_path / "cache"
    review(sc.path, cache, config())
    sc.repush_one()
    review(sc.path, cache, config())
    assert gemini_server.stats.list_calls == 1  # the second run reused the list
    stored = json.loads((cache / LIST_FILE).read_text())
    assert "gemini-3.8-flash" in stored["models"]
    review(sc.path, cache, config(models_list_ttl_s=0))
    assert gemini_server.stats.list_calls == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"v": 1, "endpoint": "x", "fetched_at": 0, "models": ["../../etc/passwd"]}),
        json.dumps({"v": 1, "endpoint": "x", "fetched_at": 1e308, "models": []}),
        json.dumps({"v": 1, "endpoint": "x", "fetched_at": 0, "models": "gemini-3.8-flash"}),
        "[" * 100_000,
        json.dumps({"v": 1, "endpoint": "x", "fetched_at": 0, "models": ["a"] * 5000}),
    ],
)
def test_a_poisoned_models_list_is_dropped_and_asked_again(
    sc: Scenario, tmp_path: Path, gemini_server: FakeGemini, content: str
) -> None:
    cache = tmp_path / "cache"
    review(sc.path, cache, config())  # a genuine list first, to learn this endpoint's id
    data = json.loads((cache / LIST_FILE).read_text())
    text = content.replace('"endpoint": "x"', f'"endpoint": "{data["endpoint"]}"')
    text = text.replace('"fetched_at": 0', f'"fetched_at": {time.time()}')
    (cache / LIST_FILE).write_text(text)
    sc.repush_one()
    run = review(sc.path, cache, config())
    assert run.verdict.verdict == "pass" and run.verdict.uncovered == []
    assert gemini_server.stats.list_calls == 2  # asked again
    assert any("models list" in w for w in run.warnings) or content.startswith("{")
