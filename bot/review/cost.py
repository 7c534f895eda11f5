"""What model calls cost, and what the naive "before" would have cost, on the same basis.

Built-in prices (DEFAULT_PRICES) are Google's published Gemini Developer API standard (paid)
tier prices in USD per 1M tokens, read from PRICES_SOURCE on PRICES_CHECKED: input, output
(thinking tokens are billed as output), cached input (what implicitly cached prompt tokens
cost), and the long-context tier for a call whose prompt is over 200k tokens where the model
has one. A price Google has announced for a later date is in PRICE_CHANGES and applies from
that day. `review.prices` overrides or extends the table per model id.

A model that is in neither table has NO price: its cost is reported as unknown (and warned
about), never guessed from another model's.

Gemini reports `promptTokenCount` INCLUDING `cachedContentTokenCount`: the cached part is
billed at the cached rate, only the rest at the input rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from bot.config.routing import PriceConfig
from bot.review.lineup import bare, known
from bot.review.prompt import BATCH_HEADER, SYSTEM_PROMPT, file_block
from bot.review.tokens import (
    CHARS_PER_TOKEN,
    Calibration,
    estimate_output_tokens,
    estimate_tokens,
)
from bot.review.types import Usage

PRICES_CHECKED = date(2026, 12, 4)
LONG_CONTEXT_TOKENS = 200_000  # Gemini's long-context price tier starts above this prompt
PRICES_SOURCE = "https://ai.google.dev/gemini-api/docs/pricing"

DEFAULT_PRICES: dict[str, PriceConfig] = {
    # Half price "through December 31, 2026", then $1.50 / $7.50 (PRICE_CHANGES).
    "gemini-3.8-flash": PriceConfig(input=0.75, output=3.75, cached_input=0.075),
    "gemini-3.7-flash": PriceConfig(input=0.75, output=3.75, cached_input=0.075),
    "gemini-3.6-flash": PriceConfig(input=0.75, output=3.75, cached_input=0.075),
    "gemini-3.5-flash": PriceConfig(input=1.50, output=9.00, cached_input=0.15),
    "gemini-3.5-flash-lite": PriceConfig(input=0.30, output=2.50, cached_input=0.03),
    "gemini-3.1-flash-lite": PriceConfig(input=0.25, output=1.50, cached_input=0.025),
    "gemini-3.1-pro-preview": PriceConfig(
        input=2.00,
        output=12.00,
        cached_input=0.20,
        input_long=4.00,
        output_long=18.00,
        cached_input_long=0.40,
    ),
    "gemini-3-flash-preview": PriceConfig(input=0.50, output=3.00, cached_input=0.05),
    "gemini-2.5-flash-lite": PriceConfig(input=0.10, output=0.40, cached_input=0.01),
}

# Announced price changes: (first day, price from then on).
PRICE_CHANGES: dict[str, tuple[tuple[date, PriceConfig], ...]] = {
    "gemini-3.8-flash": (
        (date(2027, 1, 1), PriceConfig(input=1.50, output=7.50, cached_input=0.15)),
    ),
}


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def price_for(
    model: str, prices: Mapping[str, PriceConfig] | None = None, on: date | None = None
) -> PriceConfig | None:
    """The price of `model` on `on` (default today, UTC), or None when nobody knows it.

    Configured prices win; an alias (`gemini-flash-latest`) is priced as the model it pointed
    to when the table was checked; a pinned version (`gemini-3.8-flash-001`) as its model."""
    name = bare(model)
    configured = prices or {}
    if name in configured:
        return configured[name]
    k = known(name)
    if k is not None and k.alias_of is not None:
        name = k.alias_of
    if name not in DEFAULT_PRICES and name[-4:-3] == "-" and name[-3:].isdigit():
        name = name[:-4]
    if name in configured:
        return configured[name]
    base = DEFAULT_PRICES.get(name)
    if base is None:
        return None
    day = on or today_utc()
    for start, later in PRICE_CHANGES.get(name, ()):
        if day >= start:
            base = later
    return base


def _rates(p: PriceConfig, long: bool) -> tuple[float, float, float]:
    if not long:
        return p.input, p.output, p.cached_input
    return (
        p.input_long if p.input_long is not None else p.input,
        p.output_long if p.output_long is not None else p.output,
        p.cached_input_long if p.cached_input_long is not None else p.cached_input,
    )


def priced(p: PriceConfig, usage: Usage) -> float:
    """USD of `usage` at `p`: the long-context part of it at the long-context rates."""
    total = 0.0
    for part, long in ((usage.short_part(), False), (usage.long_part(), True)):
        inp, out, cached_rate = _rates(p, long)
        cached = min(part.cached_tokens, part.input_tokens)
        fresh = part.input_tokens - cached
        total += (fresh * inp + cached * cached_rate + part.output_tokens * out) / 1e6
    return total


def cost_usd(
    model: str,
    usage: Usage,
    prices: Mapping[str, PriceConfig] | None = None,
    on: date | None = None,
) -> float | None:
    """USD of `usage` on `model`, or None when the model has no known price."""
    p = price_for(model, prices, on)
    return None if p is None else priced(p, usage)


@dataclass
class Spend:
    """What a run spent, by model; models without a price are named, not guessed."""

    usd: float = 0.0
    unpriced: dict[str, Usage] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return not self.unpriced

    def add(
        self,
        model: str,
        usage: Usage,
        prices: Mapping[str, PriceConfig] | None = None,
        on: date | None = None,
    ) -> None:
        usd = cost_usd(model, usage, prices, on)
        if usd is None:
            self.unpriced[bare(model)] = self.unpriced.get(bare(model), Usage()) + usage
        else:
            self.usd += usd


def total_cost(
    usage_by_model: Mapping[str, Usage], prices: Mapping[str, PriceConfig] | None = None
) -> Spend:
    spend = Spend()
    for m, u in usage_by_model.items():
        spend.add(m, u, prices)
    return spend


# -- the naive before -----------------------------------------------------------------------


def baseline_usage(
    full_texts: Sequence[tuple[str, str]],
    calibration: Calibration | None = None,
    thoughts_per_call: int = 0,
) -> Usage:
    """The naive before: one call per changed file with its full content, no cache.

    Each call carries the same instructions as ours (a fair comparison) and the whole file;
    output is estimated with the same per-file rule the gate's budget uses, plus the thinking
    a call of the same model does (`thoughts_per_call`, billed as output like ours).
    """
    factor = calibration.factor if calibration else 1.0
    return baseline_usage_of(
        [baseline_file_tokens(path, text, factor) for path, text in full_texts],
        factor,
        thoughts_per_call,
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


def baseline_usage_of(
    file_tokens: Sequence[int], factor: float = 1.0, thoughts_per_call: int = 0
) -> Usage:
    """The naive before from each file's `baseline_file_tokens` (one call per file)."""
    instructions = estimate_tokens(SYSTEM_PROMPT + BATCH_HEADER, factor)
    calls = len(file_tokens)
    per_call_out = estimate_output_tokens(1) + max(thoughts_per_call, 0)
    # a file whose call is over the long-context threshold is billed at the long rates too
    long = [t + instructions for t in file_tokens if t + instructions > LONG_CONTEXT_TOKENS]
    return Usage(
        calls=calls,
        input_tokens=calls * instructions + sum(file_tokens),
        output_tokens=calls * per_call_out,
        cached_tokens=0,
        thoughts_tokens=calls * max(thoughts_per_call, 0),
        input_tokens_long=sum(long),
        output_tokens_long=len(long) * per_call_out,
    )


def baseline(
    full_texts: Sequence[tuple[str, str]],
    model: str,
    prices: Mapping[str, PriceConfig] | None = None,
    *,
    calibration: Calibration | None = None,
    thoughts_per_call: int = 0,
) -> tuple[int, float | None]:
    """(calls, USD) of the naive before, all on `model` (the standard tier: what the
    runbook's bridge used). USD is None when the model has no known price."""
    usage = baseline_usage(full_texts, calibration, thoughts_per_call)
    return usage.calls, cost_usd(model, usage, prices)


def baseline_of(
    file_tokens: Sequence[int],
    model: str,
    prices: Mapping[str, PriceConfig] | None = None,
    thoughts_per_call: int = 0,
) -> tuple[int, float | None]:
    """`baseline` from each file's `baseline_file_tokens` (computed where the text is)."""
    usage = baseline_usage_of(file_tokens, thoughts_per_call=thoughts_per_call)
    return usage.calls, cost_usd(model, usage, prices)


def reduction(before: float, after: float) -> float:
    """1 - after/before: negative when `after` cost more (never clamped to look better);
    0 when there was nothing to reduce."""
    if before <= 0:
        return 0.0
    return 1 - after / before
