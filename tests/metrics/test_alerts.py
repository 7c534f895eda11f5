"""Each alert fires just past its threshold and not at it; windows and latest-audit rules hold."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config.metrics import AlertsConfig, MetricsConfig
from bot.metrics.alerts import ALERT_IDS, DEFAULT_GTW_BUDGET_MS, evaluate
from bot.metrics.figures import AnyEntry, select
from bot.metrics.records import DeployEntry, ReviewEntry
from bot.review.models import Verdict
from tests.metrics.helpers import at, verdict

DEFAULTS = AlertsConfig()


def review(minute: float, v: Verdict) -> ReviewEntry:
    return ReviewEntry(
        ts=at(minute),
        verdict=v.verdict,
        provider=v.provider,
        degraded=v.degraded,
        degraded_reason=v.degraded_reason,
        metrics=v.metrics,
    )


def run(minute: float, **fields: Any) -> DeployEntry:
    return DeployEntry(ts=at(minute), **({"kind": "audit", "target": "inf", "ok": True} | fields))


def reviews(n: int, **kw: Any) -> list[AnyEntry]:
    return [review(i, verdict(**kw)) for i in range(n)]


def ids(entries: list[AnyEntry], cfg: AlertsConfig = DEFAULTS) -> list[str]:
    return [a.id for a in evaluate(entries, cfg)]


# Plenty of cache hits so only the figure under test can fire.
OK = {"reviewed": 3, "cached": 7, "calls": 1}


def test_defaults_follow_the_runbook() -> None:
    assert DEFAULTS.min_cost_reduction == 0.8
    assert (DEFAULTS.hit_rate_min, DEFAULTS.hit_rate_max) == (0.4, 0.99)
    assert DEFAULTS.max_errors == 0 and DEFAULTS.max_degraded_runs == 0
    assert MetricsConfig().alerts == DEFAULTS
    assert DEFAULT_GTW_BUDGET_MS == 50


def test_cost_reduction_fires_below_its_threshold_not_at_it() -> None:
    # three runs at exactly 80% saved: 0.2 + 0.2 + 0.2 of 3.0 (float sums are not exact)
    at_threshold = reviews(3, cost=0.2, baseline_cost=1.0, **OK)
    assert ids(at_threshold) == []
    below = [*at_threshold[:2], review(2, verdict(cost=0.203, baseline_cost=1.0, **OK))]
    alerts = evaluate(below, DEFAULTS)
    assert [a.id for a in alerts] == ["cost_reduction_low"]
    assert alerts[0].value == pytest.approx(1 - 0.603 / 3) and alerts[0].threshold == 0.8
    assert "0.80" in alerts[0].message and "3 reviews" in alerts[0].message
    cfg = AlertsConfig(min_cost_reduction=0.79)
    assert ids(below, cfg) == []


def test_ratio_alerts_wait_for_min_runs() -> None:
    bad = reviews(2, reviewed=10, cached=0, calls=5, cost=0.9, baseline_cost=1.0)
    assert ids(bad) == []
    assert ids(bad, AlertsConfig(min_runs=2)) == ["cost_reduction_low", "cache_hit_rate_low"]


def test_hit_rate_low_fires_below_the_band_not_at_its_edge() -> None:
    cheap = {"calls": 1, "cost": 0.01, "baseline_cost": 1.0}
    assert ids(reviews(3, reviewed=6, cached=4, **cheap)) == []  # 12 / 30 = 0.40
    worse = review(3, verdict(reviewed=7, cached=3, **cheap))
    fired = [*reviews(2, reviewed=6, cached=4, **cheap), worse]
    assert ids(fired) == ["cache_hit_rate_low"]  # 11 / 30


def test_hit_rate_high_fires_above_the_band_not_at_its_edge() -> None:
    cheap = {"calls": 1, "cost": 0.0, "baseline_cost": 1.0}
    assert ids(reviews(3, reviewed=1, cached=99, **cheap)) == []  # 0.99
    fired = reviews(3, reviewed=1, cached=199, **cheap)  # 0.995
    alerts = evaluate(fired, DEFAULTS)
    assert [a.id for a in alerts] == ["cache_hit_rate_high"]
    assert "cache key" in alerts[0].message
    everything_cached = reviews(3, reviewed=0, cached=50, **cheap)
    assert ids(everything_cached) == ["cache_hit_rate_high"]
    assert ids(everything_cached, AlertsConfig(hit_rate_max=1.0)) == []


def test_band_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="hit_rate_min"):
        AlertsConfig(hit_rate_min=0.9, hit_rate_max=0.5)


def test_any_infrastructure_error_fires_and_the_threshold_is_configurable() -> None:
    assert ids([run(0, kind="deploy"), run(1)]) == []
    cut = run(0, kind="deploy", ok=False, error="ssh: connection refused", exit_code=3)
    one = [cut, run(1, kind="deploy")]  # a later deploy passed: only the error remains
    alerts = evaluate(one, DEFAULTS)
    assert [a.id for a in alerts] == ["infrastructure_error"]
    assert "ssh: connection refused" in alerts[0].message and "1 run(s)" in alerts[0].message
    assert ids(one, AlertsConfig(max_errors=1)) == []
    timeout = run(2, kind="rollback", ok=False, error="timeout", exit_code=3)
    two = [*one, timeout, run(3, kind="rollback")]
    assert ids(two, AlertsConfig(max_errors=1)) == ["infrastructure_error"]


def test_without_an_exit_code_any_error_counts_as_infrastructure() -> None:
    unknown = run(0, kind="deploy", ok=False, error="something broke")
    assert ids([unknown, run(1, kind="deploy")]) == ["infrastructure_error"]
    refused = run(0, kind="deploy", ok=False, error="lock held by run 17", exit_code=1)
    assert ids([refused, run(1, kind="deploy")]) == []


def test_deploy_failing_follows_the_latest_deploy_of_each_target() -> None:
    failed = run(0, kind="deploy", ok=False, error="install failed", exit_code=1)
    alerts = evaluate([failed], DEFAULTS)
    assert [a.id for a in alerts] == ["deploy_failing"] and "install failed" in alerts[0].message
    assert ids([failed, run(1, kind="rollback")]) == []
    other = run(1, kind="deploy", target="inf-2")
    assert ids([failed, other]) == ["deploy_failing"]


def test_a_failed_audit_without_error_is_not_an_infrastructure_error() -> None:
    assert ids([run(0, ok=False)]) == ["audit_failing"]


def test_degraded_reviewer_fires_on_the_first_degraded_run() -> None:
    normal = reviews(2, cost=0.01, baseline_cost=1.0, **OK)
    assert ids(normal) == []
    degraded = [*normal, review(5, verdict(cost=0.0, baseline_cost=1.0, degraded=True, **OK))]
    alerts = evaluate(degraded, DEFAULTS)
    assert [a.id for a in alerts] == ["degraded_reviewer"]
    assert "503" in alerts[0].message
    assert ids(degraded, AlertsConfig(max_degraded_runs=1)) == []


def test_audit_failing_follows_the_latest_audit_of_each_target() -> None:
    failed_then_passed = [run(0, ok=False, exit_code=1), run(1, ok=True)]
    assert ids(failed_then_passed) == []
    passed_then_failed = [run(0), run(1, ok=False, release="r-2")]
    alerts = evaluate(passed_then_failed, DEFAULTS)
    assert [a.id for a in alerts] == ["audit_failing"] and "r-2" in alerts[0].message
    other_target = [run(0, target="gtw-b", ok=False), run(1, target="inf", ok=True)]
    alerts = evaluate(other_target, DEFAULTS)
    assert [a.id for a in alerts] == ["audit_failing"] and "gtw-b" in alerts[0].message
    # a deploy that ran the audit and failed is a failing audit (and a failing deploy)
    audited = run(2, kind="deploy", ok=False, audit_duration_s=1.5, exit_code=1, error="gtw")
    assert ids([run(0), audited]) == ["deploy_failing", "audit_failing"]
    assert ids([run(0, ok=False), run(1, kind="deploy", audit_duration_s=1.0)]) == []


def test_gtw_round_trip_fires_over_budget_not_at_it() -> None:
    assert ids([run(0, gtw_rtt_p50_ms=50.0, gtw_rtt_max_ms=80.0)]) == []
    alerts = evaluate([run(0, gtw_rtt_p50_ms=50.5, gtw_rtt_max_ms=80.0)], DEFAULTS)
    assert [a.id for a in alerts] == ["gtw_rtt_over_budget"]
    assert (alerts[0].value, alerts[0].threshold) == (50.5, 50.0)
    # the budget recorded with the audit wins over the default ...
    own = [run(0, gtw_rtt_p50_ms=30.0, gtw_budget_ms=20.0)]
    assert ids(own) == ["gtw_rtt_over_budget"]
    assert ids([run(0, gtw_rtt_p50_ms=20.0, gtw_budget_ms=20.0)]) == []
    # ... and the configured one wins over both
    assert ids(own, AlertsConfig(gtw_rtt_budget_ms=30.0)) == []
    # only the latest measurement counts: a recovered round trip clears it
    assert ids([run(0, gtw_rtt_p50_ms=90.0), run(1, gtw_rtt_p50_ms=10.0)]) == []


def test_events_older_than_the_window_no_longer_fire() -> None:
    old_error = run(0, kind="deploy", ok=False, error="transfer cut")
    later = [run(i, kind="deploy") for i in range(1, 4)]
    entries: list[AnyEntry] = [old_error, *later]
    assert ids(select(entries, per_kind=4)) == ["infrastructure_error"]
    assert ids(select(entries, per_kind=3)) == []
    assert ids(select(entries, since=at(1))) == []


def test_alerts_come_in_a_stable_order() -> None:
    entries: list[AnyEntry] = [
        *reviews(3, reviewed=10, cached=0, calls=10, cost=1.0, baseline_cost=1.0, degraded=True),
        run(10, kind="deploy", ok=False, error="boom", exit_code=3),
        run(11, ok=False, gtw_rtt_p50_ms=99.0),
    ]
    assert ids(entries) == [a for a in ALERT_IDS if a != "cache_hit_rate_high"]
