from __future__ import annotations

from pathlib import Path

from bot.review.tokens import (
    CALIBRATION_FILE,
    Calibration,
    CalibrationTracker,
    estimate_tokens,
    load_calibration,
    save_calibration,
)


def test_estimate_is_about_four_chars_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 100) == 100
    assert estimate_tokens("abcd" * 100, factor=1.5) == 150


def test_calibration_moves_towards_reported_usage() -> None:
    cal = Calibration()
    for _ in range(10):
        cal = cal.observe(estimated_raw=1000, reported=1300)
    assert abs(cal.factor - 1.3) < 0.01
    assert cal.samples == 10
    assert cal.estimate("x" * 4000) == 1300
    # nonsense observations are ignored, extreme ones clamped
    assert cal.observe(0, 100) == cal
    assert Calibration().observe(10, 10_000).factor == 4.0


def test_tracker_and_persistence_round_trip(tmp_path: Path) -> None:
    tracker = CalibrationTracker()
    tracker.observe(1000, 1100)
    save_calibration(tmp_path, tracker.value)
    assert load_calibration(tmp_path) == Calibration(1.1, 1)


def test_unreadable_calibration_is_the_default(tmp_path: Path) -> None:
    assert load_calibration(tmp_path) == Calibration()
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    assert load_calibration(tmp_path) == Calibration()
    (tmp_path / CALIBRATION_FILE).write_text('{"factor": 99, "samples": 3}')
    assert load_calibration(tmp_path) == Calibration()
