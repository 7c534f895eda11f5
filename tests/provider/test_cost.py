from __future__ import annotations

import pytest

from bot.config.load import parse_config
from bot.review.cost import DEFAULT_PRICES, baseline, baseline_usage, cost_usd, price_for, reduction
from bot.review.types import Usage


def test_cached_prompt_tokens_are_billed_at_the_cached_rate() -> None:
    # promptTokenCount (1M) includes the 400k cached tokens.
    usage = Usage(calls=1, input_tokens=1_000_000, output_tokens=100_000, cached_tokens=400_000)
    expected = 0.6 * 0.30 + 0.4 * 0.03 + 0.1 * 2.50
    assert cost_usd("gemini-2.5-flash", usage) == pytest.approx(expected)
    uncached = Usage(calls=1, input_tokens=1_000_000, output_tokens=100_000)
    assert cost_usd("gemini-2.5-flash", uncached) == pytest.approx(0.30 + 0.25)


def test_published_defaults_and_ordering() -> None:
    lite, flash, pro = (DEFAULT_PRICES[m] for m in DEFAULT_PRICES)
    assert (lite.input, lite.output) == (0.10, 0.40)
    assert (flash.input, flash.output) == (0.30, 2.50)
    assert (pro.input, pro.output) == (1.25, 10.00)
    assert lite.input < flash.input < pro.input


def test_prices_are_configurable_and_unknown_models_never_free() -> None:
    cfg = parse_config(
        {"review": {"prices": {"my-model": {"input": 1, "output": 2, "cached_input": 0.5}}}}
    ).review
    usage = Usage(calls=1, input_tokens=2_000_000, output_tokens=1_000_000, cached_tokens=0)
    assert cost_usd("my-model", usage, cfg.prices) == pytest.approx(4.0)
    assert price_for("gemini-2.5-flash-preview-09-2025") == DEFAULT_PRICES["gemini-2.5-flash"]
    assert price_for("models/gemini-2.5-pro") == DEFAULT_PRICES["gemini-2.5-pro"]
    assert price_for("some-future-model") == DEFAULT_PRICES["gemini-2.5-pro"]


def test_a_price_entry_with_a_missing_field_is_a_config_error() -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"review\.prices\.m\.cached_input"):
        parse_config({"review": {"prices": {"m": {"input": 1, "output": 2}}}})


def test_baseline_is_one_full_call_per_file() -> None:
    texts = [(f"src/f{i}.py", "x = 1\n" * 400) for i in range(10)]
    usage = baseline_usage(texts)
    assert usage.calls == 10
    assert usage.input_tokens >= 10 * len("x = 1\n" * 400) // 4
    calls, usd = baseline(texts, "gemini-2.5-flash")
    assert calls == 10
    assert usd == pytest.approx(cost_usd("gemini-2.5-flash", usage))
    bigger = baseline([(p, t * 2) for p, t in texts], "gemini-2.5-flash")[1]
    assert bigger > usd


def test_reduction() -> None:
    assert reduction(10.0, 1.0) == pytest.approx(0.9)
    assert reduction(0.0, 1.0) == 0.0
    assert reduction(1.0, 2.0) == 0.0
