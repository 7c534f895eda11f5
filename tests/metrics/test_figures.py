"""Rolling figures equal what a person computes by hand from the same history records."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.config.metrics import MetricsConfig
from bot.errors import UsageError
from bot.metrics.figures import figures, parse_since, percentile, run_figures, select
from bot.metrics.history import history_path, load_history, record_deploy, record_review
from bot.metrics.records import ReviewEntry
from tests.metrics.helpers import at, verdict

CFG = MetricsConfig()

VERDICTS = [
    verdict(reviewed=50, cached=0, calls=6, cost=0.060, baseline_cost=0.500, duration=9.0),
    verdict(reviewed=1, cached=49, calls=1, cost=0.002, baseline_cost=0.500, duration=2.0),
    verdict(reviewed=0, cached=50, calls=0, cost=0.0, baseline_cost=0.500, duration=0.5),
    verdict(
        reviewed=3, cached=1, skipped=2, calls=1, cost=0.004, baseline_cost=0.040, duration=3.0
    ),
    verdict(
        reviewed=2, cached=0, calls=0, cost=0.0, baseline_cost=0.020, degraded=True, duration=1.5
    ),
]
DEPLOYS = [
    {"kind": "deploy", "target": "inf", "ok": True, "duration_s": 12.0, "bytes_sent": 100_000,
     "files_sent": 40, "audit_duration_s": 2.0, "gtw_rtt_p50_ms": 4.0, "gtw_rtt_max_ms": 9.0},
    {"kind": "audit", "target": "inf", "ok": True, "duration_s": 2.5, "gtw_rtt_p50_ms": 5.0,
     "gtw_rtt_max_ms": 11.0},
    {"kind": "deploy", "target": "inf", "ok": False, "duration_s": 3.0, "bytes_sent": 500,
     "files_sent": 1, "error": "install failed: pip exited 1"},
    {"kind": "rollback", "target": "inf", "ok": True, "duration_s": 0.4},
    {"kind": "audit", "target": "inf", "ok": True, "duration_s": 1.5, "gtw_rtt_p50_ms": 3.5,
     "gtw_rtt_max_ms": 6.0},
]  # fmt: skip


@pytest.fixture
def history(tmp_path: Path) -> Path:
    minute = 0
    for v in VERDICTS:
        record_review(tmp_path, v, CFG, now=at(minute), env={})
        minute += 10
    for d in DEPLOYS:
        record_deploy(tmp_path, d, CFG, now=at(minute), env={})
        minute += 10
    return history_path(tmp_path)


def test_rolling_review_figures_match_a_hand_computation(history: Path) -> None:
    entries = load_history(history).entries
    fig = figures(select(entries, per_kind=20))
    ms = [v.metrics for v in VERDICTS]
    r = fig.review

    assert r.runs == 5
    assert r.api_calls == 6 + 1 + 0 + 1 + 0
    assert r.baseline_api_calls == 50 + 50 + 50 + 4 + 2
    assert r.call_reduction == pytest.approx(1 - 8 / 156)
    assert r.input_tokens == 5 * 1000 and r.output_tokens == 5 * 100
    assert r.cost_usd == pytest.approx(0.066)
    assert r.baseline_cost_usd == pytest.approx(1.56)
    assert r.saved_usd == pytest.approx(1.56 - 0.066)
    assert r.cost_reduction == pytest.approx(1 - 0.066 / 1.56)
    # hit rate over files that needed a review: cached / (cached + reviewed)
    assert r.files_cached == 100 and r.files_reviewed == 56 and r.files_skipped == 2
    assert r.cache_hit_rate == pytest.approx(100 / 156)
    # files sent to the model: files_per_call x calls per run (the degraded run sent none)
    assert r.files_per_call == pytest.approx((50 + 1 + 0 + 3 + 0) / 8)
    assert r.degraded_runs == 1
    # durations sorted: 0.5 1.5 2.0 3.0 9.0; nearest rank p50 = 3rd, p95 = 5th
    assert r.duration_p50_s == 2.0
    assert r.duration_p95_s == 9.0
    # per-run figures agree with the pipeline's own per-run numbers
    for entry, m in zip([e for e in entries if isinstance(e, ReviewEntry)], ms, strict=True):
        row = run_figures(entry)
        if m.baseline_cost_usd:
            assert row["cost_reduction"] == pytest.approx(m.cost_reduction_rate)
        if m.files_cached + m.files_reviewed:
            assert row["cache_hit_rate"] == pytest.approx(m.cache_hit_rate)
        if m.api_calls:
            assert row["files_per_call"] == pytest.approx(m.files_per_call)
        assert row["saved_usd"] == pytest.approx(m.baseline_cost_usd - m.cost_usd)


def test_rolling_deploy_figures_match_a_hand_computation(history: Path) -> None:
    fig = figures(select(load_history(history).entries, per_kind=20))
    d = fig.deploy
    assert (d.deploys, d.rollbacks, d.audits) == (2, 1, 2)
    assert (d.failed_deploys, d.failed_audits) == (1, 0)
    # deploy durations 3.0, 12.0: p50 = 1st, p95 = 2nd
    assert (d.deploy_duration_p50_s, d.deploy_duration_p95_s) == (3.0, 12.0)
    assert d.bytes_sent == 100_500 and d.files_sent == 41
    # audit durations: the deploy's own audit (2.0) and the two audits (2.5, 1.5)
    assert (d.audit_duration_p50_s, d.audit_duration_p95_s) == (2.0, 2.5)
    assert d.gtw_rtt_p50_ms == 3.5  # the latest audit's
    assert d.gtw_rtt_max_ms == 11.0
    assert fig.runs == 10
    assert fig.errors == 1
    assert fig.error_rate == pytest.approx(0.1)
    assert fig.first_ts == at(0) and fig.last_ts == at(90)


def test_window_takes_the_newest_runs_of_each_kind(history: Path) -> None:
    entries = load_history(history).entries
    two = select(entries, per_kind=2)
    assert [e.kind for e in two] == [
        "review",
        "review",
        "deploy",
        "audit",
        "deploy",
        "rollback",
        "audit",
    ]
    assert figures(two).review.api_calls == 1 + 0
    since = select(entries, since=at(20))
    assert since[0].ts == at(20) and len(since) == 8


def test_empty_window_has_no_ratios_instead_of_zeros() -> None:
    fig = figures([])
    assert fig.runs == 0 and fig.error_rate is None
    assert fig.review.cost_reduction is None and fig.review.cache_hit_rate is None
    assert fig.review.files_per_call is None and fig.review.duration_p50_s is None
    assert fig.deploy.gtw_rtt_p50_ms is None


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([5.0], 0.5, 5.0), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4], 0.95, 4),
     (list(range(1, 101)), 0.95, 95), (list(range(1, 101)), 0.5, 50), ([], 0.5, None)],
)  # fmt: skip
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected
    if values:
        assert percentile(values, p) == sorted(values)[math.ceil(p * len(values)) - 1]


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("2026-11-01T06:30:00Z", datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)),
        ("2026-11-01T08:30:00+02:00", datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "3x", "-7d", "yesterday", "2026-13-01"])
def test_parse_since_rejects_nonsense_naming_it(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_since(text, NOW)
    assert repr(text) in str(err.value) and "--since" in str(err.value)


def test_error_rate_counts_errors_and_nonzero_exit_codes(tmp_path: Path) -> None:
    for minute, record in enumerate(
        [
            {"kind": "deploy", "target": "inf", "ok": True, "exit_code": 0},
            {"kind": "audit", "target": "inf", "ok": False, "exit_code": 1},  # layer failed
            {"kind": "deploy", "target": "inf", "ok": False, "error": "ssh: timeout"},
            {"kind": "rollback", "target": "inf", "ok": True},
        ]
    ):
        record_deploy(tmp_path, record, CFG, now=at(minute), env={})
    record_review(tmp_path, VERDICTS[4], CFG, now=at(10), env={})  # degraded is not an error
    fig = figures(load_history(history_path(tmp_path)).entries)
    assert (fig.runs, fig.errors) == (5, 2)
    assert fig.error_rate == pytest.approx(2 / 5)
