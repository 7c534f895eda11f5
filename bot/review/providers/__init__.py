"""Model providers. `select_provider` picks one from the environment, or None (local review).

Gemini is chosen when GEMINI_API_KEY (or GOOGLE_API_KEY) is set. GOOGLE_GEMINI_BASE_URL (the
SDK's own override, for proxies and tests) is passed through as the client's base URL.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config.review import ReviewConfig
from bot.review.providers.gemini import GeminiProvider, gemini_from_env
from bot.review.tokens import CalibrationTracker
from bot.review.types import Provider

__all__ = ["GeminiProvider", "select_provider"]


def select_provider(
    env: Mapping[str, str],
    config: ReviewConfig,
    *,
    calibration: CalibrationTracker | None = None,
) -> Provider | None:
    return gemini_from_env(env, config, calibration=calibration)
