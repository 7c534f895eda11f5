"""Verdict rules and metrics (pure)."""

from __future__ import annotations

import pytest

from bot.config.review import ReviewConfig
from bot.review.models import FileResult, Finding
from bot.review.types import Usage
from bot.review.verdict import compute_metrics, decide


def _f(sev: str, source: str = "local") -> Finding:
    return Finding(path="a.py", line=1, severity=sev, category="c", message="m", source=source)


def _fr(path: str = "a.py", **kw) -> FileResult:
    return FileResult(path=path, status=kw.pop("status", "reviewed"), **kw)


@pytest.mark.parametrize(
    ("sev", "blocking", "verdict"),
    [
        ("high", "high", "fail"),
        ("critical", "high", "fail"),
        ("medium", "high", "pass"),
        ("low", "low", "fail"),
        ("info", "low", "pass"),
    ],
)
def test_blocking_severity(sev: str, blocking: str, verdict: str) -> None:
    d = decide([_fr(findings=[_f(sev)])], ReviewConfig(blocking_severity=blocking))
    assert d.verdict == verdict


def test_protected_conclusion() -> None:
    files = [_fr(".github/workflows/ci.yml", needs_human=True), _fr()]
    neutral = decide(files, ReviewConfig())
    assert neutral.verdict == "neutral" and ".github/workflows/ci.yml" in neutral.reasons[0]
    failure = decide(files, ReviewConfig(protected={"conclusion": "failure"}))
    assert failure.verdict == "fail"


def test_uncovered_is_neutral_unless_something_blocks() -> None:
    files = [_fr("x.py", covered=False, reason="provider down"), _fr()]
    d = decide(files, ReviewConfig())
    assert d.verdict == "neutral" and "x.py" in d.reasons[0]
    files.append(_fr("y.py", findings=[_f("critical")]))
    d = decide(files, ReviewConfig())
    assert d.verdict == "fail" and any("x.py" in r for r in d.reasons)


def test_pass_with_nothing() -> None:
    assert decide([], ReviewConfig()).verdict == "pass"
    assert decide([_fr(status="skipped", reason="lock file")], ReviewConfig()).verdict == "pass"


def test_metrics() -> None:
    files = [
        _fr("a"),
        _fr("b", status="cached"),
        _fr("c", status="cached"),
        _fr("d", status="cached"),
        _fr("e", status="skipped"),
    ]
    m = compute_metrics(
        files,
        usage=Usage(calls=2, input_tokens=1000, output_tokens=100, cached_tokens=400),
        batches=2,
        files_reviewed_by_model=6,
        cost_usd=0.01,
        baseline_api_calls=50,
        baseline_cost_usd=0.2,
        duration_s=1.23456,
    )
    assert (m.files_total, m.files_reviewed, m.files_cached, m.files_skipped) == (5, 1, 3, 1)
    assert m.cache_hit_rate == 0.75
    assert m.cost_reduction_rate == 0.95
    assert m.files_per_call == 3.0
    assert (m.api_calls, m.cached_tokens, m.duration_s) == (2, 400, 1.235)
    empty = compute_metrics(
        [],
        usage=Usage(),
        batches=0,
        files_reviewed_by_model=0,
        cost_usd=0.0,
        baseline_api_calls=0,
        baseline_cost_usd=0.0,
        duration_s=0.0,
    )
    assert empty.cache_hit_rate == 0.0 and empty.cost_reduction_rate == 0.0
