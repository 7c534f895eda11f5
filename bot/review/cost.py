"""What model calls cost, and what the naive "before" would have cost.

Default prices are Google's published Gemini Developer API standard-tier prices in USD per 1M
tokens for text prompts up to 200k tokens (ai.google.dev/gemini-api/docs/pricing): input,
output (thinking tokens are billed as output) and context-cache reads, which is what implicitly
cached prompt tokens cost. `review.prices` overrides or extends the table per model name.

Gemini reports `promptTokenCount` INCLUDING `cachedContentTokenCount`: the cached part is
billed at the cached rate, only the rest at the input rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bot.config.routing import PriceConfig
from bot.review.prompt import BATCH_HEADER, SYSTEM_PROMPT, file_block
from bot.review.tokens import (
    CHARS_PER_TOKEN,
    Calibration,
    estimate_output_tokens,
    estimate_tokens,
)
from bot.review.types import Usage

DEFAULT_PRICES: dict[str, PriceConfig] = {
    "gemini-2.5-flash-lite": PriceConfig(input=0.10, output=0.40, cached_input=0.01),
    "gemini-2.5-flash": PriceConfig(input=0.30, output=2.50, cached_input=0.03),
    "gemini-2.5-pro": PriceConfig(input=1.25, output=10.00, cached_input=0.125),
}

# Model names not in the table fall back by family, then to the dearest known price, so an
# unknown model is never reported as free.
_FAMILIES = (("flash-lite", "gemini-2.5-flash-lite"), ("flash", "gemini-2.5-flash"))


def price_for(model: str, prices: Mapping[str, PriceConfig] | None = None) -> PriceConfig:
    table = {**DEFAULT_PRICES, **(prices or {})}
    name = model.removeprefix("models/")
    if name in table:
        return table[name]
    # e.g. "gemini-2.5-flash-preview-09-2025" -> the longest table name it starts with
    prefixed = [k for k in table if name.startswith(k)]
    if prefixed:
        return table[max(prefixed, key=len)]
    for marker, known in _FAMILIES:
        if marker in name:
            return table[known]
    return max(table.values(), key=lambda p: (p.input, p.output))


def cost_usd(model: str, usage: Usage, prices: Mapping[str, PriceConfig] | None = None) -> float:
    p = price_for(model, prices)
    cached = min(usage.cached_tokens, usage.input_tokens)
    fresh = usage.input_tokens - cached
    return (fresh * p.input + cached * p.cached_input + usage.output_tokens * p.output) / 1e6


def total_cost(
    usage_by_model: Mapping[str, Usage], prices: Mapping[str, PriceConfig] | None = None
) -> float:
    return sum(cost_usd(m, u, prices) for m, u in usage_by_model.items())


def baseline_usage(
    full_texts: Sequence[tuple[str, str]], calibration: Calibration | None = None
) -> Usage:
    """The naive before: one call per changed file with its full content, no cache.

    Each call carries the same instructions as ours (a fair comparison) and the whole file;
    output is estimated with the same per-file rule the gate's budget uses.
    """
    factor = calibration.factor if calibration else 1.0
    return baseline_usage_of(
        [baseline_file_tokens(path, text, factor) for path, text in full_texts], factor
    )


def baseline_file_tokens(path: str, text: str, factor: float = 1.0) -> int:
    """The input tokens of one naive call's file block: the whole file, every line added.

    Only the block's length matters to the estimate, so the body (each line as "+line\n")
    is counted, not built: on a 1,000-file change, building it was most of the cost."""
    numbered = range(1, text.count("\n") + 2)
    lines = text.splitlines()
    body_chars = sum(map(len, lines)) + 2 * len(lines)
    chars = len(file_block(path, 1, 1, numbered, "")) + body_chars
    return max(1, math.ceil(chars / CHARS_PER_TOKEN * factor))


def baseline_usage_of(file_tokens: Sequence[int], factor: float = 1.0) -> Usage:
    """The naive before from each file's `baseline_file_tokens` (one call per file)."""
    instructions = estimate_tokens(SYSTEM_PROMPT + BATCH_HEADER, factor)
    calls = len(file_tokens)
    return Usage(
        calls=calls,
        input_tokens=calls * instructions + sum(file_tokens),
        output_tokens=calls * estimate_output_tokens(1),
        cached_tokens=0,
    )


def baseline(
    full_texts: Sequence[tuple[str, str]],
    model: str,
    prices: Mapping[str, PriceConfig] | None = None,
    *,
    calibration: Calibration | None = None,
) -> tuple[int, float]:
    """(calls, USD) of the naive before, all on `model` (the tier the runbook's bridge used)."""
    usage = baseline_usage(full_texts, calibration)
    return usage.calls, cost_usd(model, usage, prices)


def baseline_of(
    file_tokens: Sequence[int], model: str, prices: Mapping[str, PriceConfig] | None = None
) -> tuple[int, float]:
    """`baseline` from each file's `baseline_file_tokens` (computed where the text is)."""
    usage = baseline_usage_of(file_tokens)
    return usage.calls, cost_usd(model, usage, prices)


def reduction(before: float, after: float) -> float:
    """1 - after/before, 0 when there was nothing to reduce."""
    if before <= 0:
        return 0.0
    return max(0.0, min(1.0, 1 - after / before))
