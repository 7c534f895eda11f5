"""Request parameters per model generation (bot/review/lineup.py says which is which).

- Gemini 3 and later: `thinking_level` (the configured level, or the nearest one the model
  takes: 3.8 Flash has no `minimal`, for instance); never `thinking_budget` together with it
  (the API answers 400) and never a budget on 3.5+ (refused); no temperature: Google advises
  leaving it at its default, the models' reasoning is tuned for it.
- Gemini 2.x: `thinking_budget` when configured, temperature 0 for repeatable answers.
"""

from __future__ import annotations

import logging

from google.genai import types as gtypes

from bot.config.routing import GeminiConfig
from bot.review.lineup import (
    THINKING_LEVELS,
    supported_levels,
    takes_budget,
    takes_temperature,
    thinking_style,
)
from bot.review.prompt import Answer

log = logging.getLogger(__name__)


def nearest_level(wanted: str, offered: tuple[str, ...]) -> str | None:
    """`wanted` if offered, else the closest offered level (ties go to the deeper one)."""
    if not offered or wanted in offered:
        return wanted if offered else None
    rank = {lv: i for i, lv in enumerate(THINKING_LEVELS)}
    w = rank.get(wanted, 1)
    return min(offered, key=lambda lv: (abs(rank.get(lv, 1) - w), -rank.get(lv, 1)))


def thinking_config(model: str, settings: GeminiConfig) -> gtypes.ThinkingConfig | None:
    if thinking_style(model) == "level":
        if settings.thinking_level is None:
            return None
        level = nearest_level(settings.thinking_level, supported_levels(model))
        if level is None:
            return None
        return gtypes.ThinkingConfig(thinking_level=gtypes.ThinkingLevel(level.upper()))
    if settings.thinking_budget is not None and takes_budget(model):
        return gtypes.ThinkingConfig(thinking_budget=settings.thinking_budget)
    return None


def generation_config(
    model: str, settings: GeminiConfig, system: str
) -> gtypes.GenerateContentConfig:
    """The GenerateContentConfig for one call on `model`."""
    return gtypes.GenerateContentConfig(
        system_instruction=system,
        temperature=0.0 if takes_temperature(model) else None,
        response_mime_type="application/json",
        response_schema=Answer,
        thinking_config=thinking_config(model, settings),
    )
