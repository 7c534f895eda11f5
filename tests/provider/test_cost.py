from __future__ import annotations

from datetime import date

import pytest

from bot.config.load import parse_config
from bot.review.cost import (
    DEFAULT_PRICES,
    PRICES_CHECKED,
    Spend,
    baseline,
    baseline_usage,
    cost_usd,
    price_for,
    reduction,
)
from bot.review.types import Usage

TODAY = PRICES_CHECKED


def test_cached_prompt_tokens_are_billed_at_the_cached_rate() -> None:
    # promptTokenCount (1M) includes the 400k cached tokens.
    usage = Usage(calls=1, input_tokens=1_000_000, output_tokens=100_000, cached_tokens=400_000)
    expected = 0.6 * 0.75 + 0.4 * 0.075 + 0.1 * 3.75
    assert cost_usd("gemini-3.8-flash", usage, on=TODAY) == pytest.approx(expected)
    uncached = Usage(calls=1, input_tokens=1_000_000, output_tokens=100_000)
    assert cost_usd("gemini-3.8-flash", uncached, on=TODAY) == pytest.approx(0.75 + 0.375)


def test_thinking_is_billed_as_output() -> None:
    # output_tokens = candidates + thoughts; the thoughts are part of it, billed alike
    answer = Usage(calls=1, input_tokens=10_000, output_tokens=500)
    thinking = Usage(calls=1, input_tokens=10_000, output_tokens=2_500, thoughts_tokens=2_000)
    a = cost_usd("gemini-3.5-flash-lite", answer, on=TODAY)
    b = cost_usd("gemini-3.5-flash-lite", thinking, on=TODAY)
    assert a is not None and b is not None
    assert b - a == pytest.approx(2_000 * 2.50 / 1e6)


def test_the_long_context_tier_applies_to_long_prompts() -> None:
    short = Usage(calls=1, input_tokens=100_000, output_tokens=1_000)
    long = Usage(
        calls=1,
        input_tokens=300_000,
        output_tokens=1_000,
        input_tokens_long=300_000,
        output_tokens_long=1_000,
    )
    pro = "gemini-3.1-pro-preview"
    assert cost_usd(pro, short, on=TODAY) == pytest.approx(0.1 * 2.00 + 0.001 * 12.0)
    assert cost_usd(pro, long, on=TODAY) == pytest.approx(0.3 * 4.00 + 0.001 * 18.0)
    # two calls, one long: each at its own tier
    both = short + long
    assert cost_usd(pro, both, on=TODAY) == pytest.approx(
        0.1 * 2.00 + 0.001 * 12.0 + 0.3 * 4.00 + 0.001 * 18.0
    )


def test_published_prices_dated_and_ordered() -> None:
    lite = DEFAULT_PRICES["gemini-3.5-flash-lite"]
    flash = DEFAULT_PRICES["gemini-3.8-flash"]
    pro = DEFAULT_PRICES["gemini-3.1-pro-preview"]
    assert (lite.input, lite.output, lite.cached_input) == (0.30, 2.50, 0.03)
    assert (flash.input, flash.output, flash.cached_input) == (0.75, 3.75, 0.075)
    assert (pro.input, pro.output, pro.input_long, pro.output_long) == (2.0, 12.0, 4.0, 18.0)
    assert lite.input < flash.input < pro.input
    # 3.8 Flash's launch price ends on 2026-12-31: from 2027 the standard price applies
    later = price_for("gemini-3.8-flash", on=date(2027, 1, 1))
    assert later is not None and (later.input, later.output) == (1.50, 7.50)
    assert price_for("gemini-3.8-flash", on=date(2026, 12, 31)) == flash


def test_aliases_and_pinned_versions_are_priced_as_their_model() -> None:
    assert price_for("gemini-flash-latest", on=TODAY) == DEFAULT_PRICES["gemini-3.8-flash"]
    assert price_for("models/gemini-3.1-pro-preview") == DEFAULT_PRICES["gemini-3.1-pro-preview"]
    assert price_for("gemini-3.5-flash-lite-001") == DEFAULT_PRICES["gemini-3.5-flash-lite"]


def test_an_unknown_model_has_no_price_and_is_never_guessed() -> None:
    usage = Usage(calls=1, input_tokens=1000, output_tokens=100)
    for model in ("gemini-4-argon", "some-future-model", "gemini-2.5-pro", "gemini-3.9-flash"):
        assert price_for(model) is None
        assert cost_usd(model, usage) is None
    spend = Spend()
    spend.add("gemini-3.8-flash", usage, on=TODAY)
    spend.add("gemini-4-argon", usage)
    assert not spend.known and list(spend.unpriced) == ["gemini-4-argon"]
    assert spend.usd == pytest.approx((1000 * 0.75 + 100 * 3.75) / 1e6)


def test_prices_are_configurable() -> None:
    cfg = parse_config(
        {
            "review": {
                "prices": {
                    "my-model": {"input": 1, "output": 2, "cached_input": 0.5},
                    "gemini-3.8-flash": {"input": 9, "output": 9, "cached_input": 9},
                }
            }
        }
    ).review
    usage = Usage(calls=1, input_tokens=2_000_000, output_tokens=1_000_000, cached_tokens=0)
    assert cost_usd("my-model", usage, cfg.prices) == pytest.approx(4.0)
    assert cost_usd("gemini-3.8-flash", usage, cfg.prices) == pytest.approx(27.0)


def test_a_price_entry_with_a_missing_field_is_a_config_error() -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"review\.prices\.m\.cached_input"):
        parse_config({"review": {"prices": {"m": {"input": 1, "output": 2}}}})


def test_baseline_is_one_full_call_per_file_with_the_same_thinking() -> None:
    texts = [(f"src/f{i}.py", "x = 1\n" * 400) for i in range(10)]
    usage = baseline_usage(texts)
    assert usage.calls == 10
    assert usage.input_tokens >= 10 * len("x = 1\n" * 400) // 4
    calls, usd = baseline(texts, "gemini-3.8-flash")
    assert calls == 10 and usd is not None
    assert usd == pytest.approx(cost_usd("gemini-3.8-flash", usage))
    bigger = baseline([(p, t * 2) for p, t in texts], "gemini-3.8-flash")[1]
    assert bigger is not None and bigger > usd
    # thinking per call is charged to every naive call, as output
    _, thinking = baseline(texts, "gemini-3.8-flash", thoughts_per_call=500)
    assert thinking is not None
    assert thinking - usd == pytest.approx(10 * 500 * price_out("gemini-3.8-flash"))
    assert baseline(texts, "no-such-model")[1] is None


def price_out(model: str) -> float:
    p = price_for(model)
    assert p is not None
    return p.output / 1e6


def test_reduction_is_never_clamped() -> None:
    assert reduction(10.0, 1.0) == pytest.approx(0.9)
    assert reduction(0.0, 1.0) == 0.0
    assert reduction(1.0, 3.0) == pytest.approx(-2.0)  # three times the naive cost
