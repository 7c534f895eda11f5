"""Token estimates without a tokenizer, calibrated against what the provider reports.

Packing needs an estimate before any call is made. Characters / 4 is the usual rule for English
and code on Gemini's tokenizer; the real ratio for a given code base differs, so every answer's
`promptTokenCount` is compared with our estimate of the prompt we sent and a smoothed
correction factor is kept (optionally persisted beside the review cache).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from bot.config.routing import GeminiConfig
from bot.review import restored
from bot.review.lineup import thinking_style

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0
# What an answer in our schema costs per file (an entry, and a finding on average) and per call,
# in tokens. The naive baseline is estimated with the same rule, so the two compare fairly.
OUTPUT_TOKENS_PER_FILE = 40
OUTPUT_TOKENS_PER_CALL = 10

_MIN_FACTOR, _MAX_FACTOR = 0.25, 4.0
_SMOOTHING = 0.3  # weight of a new observation in the running factor
CALIBRATION_FILE = "token-calibration.json"
_MAX_CALIBRATION_BYTES = 4096
_MAX_SAMPLES = 10**9


def estimate_tokens(text: str, factor: float = 1.0) -> int:
    if not text:
        return 0
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN * factor))


def estimate_output_tokens(files: int) -> int:
    return OUTPUT_TOKENS_PER_CALL + OUTPUT_TOKENS_PER_FILE * files


# Thinking tokens a review call is expected to spend (billed as output), before any call of
# the run says what it really spent: by thinking level (Gemini 3), or the budget (2.5; a
# dynamic or default budget is taken as 1,024). Used for the dollar cap, the tier-merge price
# rule and, when a run made no call, the naive baseline (the same figure per call for both).
THOUGHTS_PER_CALL = {"minimal": 0, "low": 512, "medium": 2048, "high": 8192}
DEFAULT_THOUGHTS = 1024


def estimated_thoughts(model: str, settings: GeminiConfig) -> int:
    if thinking_style(model) == "level":
        level = settings.thinking_level
        return THOUGHTS_PER_CALL.get(level, DEFAULT_THOUGHTS) if level else 8192
    budget = settings.thinking_budget
    if budget is None or budget < 0:
        return DEFAULT_THOUGHTS
    return budget


@dataclass(frozen=True)
class Calibration:
    """reported ≈ estimated × factor. Immutable: `observe` returns the updated value."""

    factor: float = 1.0
    samples: int = 0

    def estimate(self, text: str) -> int:
        return estimate_tokens(text, self.factor)

    def observe(self, estimated_raw: int, reported: int) -> Calibration:
        """Fold one observation in. `estimated_raw` is the uncalibrated (factor 1.0) estimate."""
        if estimated_raw <= 0 or reported <= 0:
            return self
        ratio = min(max(reported / estimated_raw, _MIN_FACTOR), _MAX_FACTOR)
        first = self.samples == 0
        factor = ratio if first else (1 - _SMOOTHING) * self.factor + _SMOOTHING * ratio
        return Calibration(round(factor, 4), self.samples + 1)


class CalibrationTracker:
    """Thread-safe holder the provider updates from concurrent calls."""

    def __init__(self, initial: Calibration | None = None) -> None:
        self._value = initial or Calibration()
        self._lock = threading.Lock()

    @property
    def value(self) -> Calibration:
        with self._lock:
            return self._value

    def observe(self, estimated_raw: int, reported: int) -> None:
        with self._lock:
            self._value = self._value.observe(estimated_raw, reported)


def load_calibration(directory: Path) -> Calibration:
    """Read a persisted calibration. The file is restored state (bot/review/restored.py):
    anything but a small JSON object with a finite factor in range and a sample count is
    dropped (deleted, one warning) and the default is used: estimates still work."""
    try:
        data = restored.read_entry(directory, CALIBRATION_FILE, _MAX_CALIBRATION_BYTES)
        if data is None:
            return Calibration()
        raw = restored.loads_json(data, CALIBRATION_FILE)
        if not isinstance(raw, dict) or set(raw) != {"factor", "samples"}:
            raise restored.StateError(f"{CALIBRATION_FILE}: not {{factor, samples}}")
        factor, samples = raw["factor"], raw["samples"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise restored.StateError(f"{CALIBRATION_FILE}: factor is not a number")
        if isinstance(samples, bool) or not isinstance(samples, int):
            raise restored.StateError(f"{CALIBRATION_FILE}: samples is not an integer")
        if not (math.isfinite(factor) and _MIN_FACTOR <= factor <= _MAX_FACTOR):
            raise restored.StateError(f"{CALIBRATION_FILE}: factor out of range")
        if not 0 <= samples <= _MAX_SAMPLES:
            raise restored.StateError(f"{CALIBRATION_FILE}: samples out of range")
    except (restored.StateError, OSError) as exc:
        log.warning("token calibration dropped, estimating cold: %s", exc)
        _drop(directory)
        return Calibration()
    return Calibration(float(factor), samples)


def _drop(directory: Path) -> None:
    if restored.directory_problem(directory):
        return  # not ours to clean: the directory itself is refused
    try:
        restored.clear_entry(directory, CALIBRATION_FILE)
        (directory / CALIBRATION_FILE).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the dropped token calibration: %s", exc)


def save_calibration(directory: Path, calibration: Calibration) -> None:
    """Atomic: a concurrent reader sees the old or the new file, never half; a link planted
    under the name is replaced, not written through. OSError/StateError: not saved."""
    data = json.dumps({"factor": calibration.factor, "samples": calibration.samples})
    restored.write_entry(directory, CALIBRATION_FILE, data.encode("utf-8"))
