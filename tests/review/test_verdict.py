"""Verdict rules and metrics (pure)."""

from __future__ import annotations

import pytest

from bot.config.review import ReviewConfig
from bot.review.models import FileResult, Finding, NotReviewed
from bot.review.types import Usage
from bot.review.verdict import compute_metrics, decide, not_reviewed_headline


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
    failure = decide(files, ReviewConfig())
    assert failure.verdict == "fail" and ".github/workflows/ci.yml" in failure.reasons[0]
    neutral = decide(files, ReviewConfig(protected={"conclusion": "neutral"}))
    assert neutral.verdict == "neutral"


def _nr(path: str, cause: str) -> FileResult:
    return _fr(path, not_reviewed=NotReviewed(cause=cause, reason=f"{cause} says no"))


@pytest.mark.parametrize("cause", ["content", "provider", "budget", "no_model"])
def test_not_reviewed_fails_closed_by_default(cause: str) -> None:
    d = decide([_nr("x.py", cause), _fr()], ReviewConfig())
    assert d.verdict == "fail" and "x.py" in d.reasons[0] and "not reviewed: 1 file" in d.reasons[0]


@pytest.mark.parametrize(
    ("cause", "verdict"),
    [("provider", "neutral"), ("no_model", "neutral"), ("content", "fail"), ("budget", "fail")],
)
def test_fail_open_only_opens_what_no_pr_can_provoke(cause: str, verdict: str) -> None:
    d = decide([_nr("x.py", cause)], ReviewConfig(unreviewed="neutral"))
    assert d.verdict == verdict


def test_a_file_marked_uncovered_without_a_cause_counts_as_content() -> None:
    fr = _fr("x.py", covered=False, reason="a type the gate cannot read")
    assert fr.not_reviewed == NotReviewed(cause="content", reason="a type the gate cannot read")
    assert decide([fr], ReviewConfig(unreviewed="neutral")).verdict == "fail"
    assert _nr("y.py", "provider").covered is False


def test_a_blocking_finding_still_fails_beside_opened_files() -> None:
    files = [_nr("x.py", "provider"), _fr("y.py", findings=[_f("critical")])]
    d = decide(files, ReviewConfig(unreviewed="neutral"))
    assert d.verdict == "fail" and any("x.py" in r for r in d.reasons)


def test_not_reviewed_headline_names_the_causes() -> None:
    files = [_nr("a", "content"), _nr("b", "content"), _nr("c", "provider"), _fr("d")]
    assert not_reviewed_headline(files) == "not reviewed: 3 files (content 2, provider outage 1)"
    assert not_reviewed_headline([_nr("a", "no_model")]) == (
        "not reviewed by a model: 1 file (no model key in this run)"
    )
    assert not_reviewed_headline([_fr()]) is None


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
    # A file nobody covered is counted once, as not reviewed (a cap, an outage, an oversize
    # skipped file): the four counts add up to the total.
    uncovered = [
        *files,
        _fr("f", not_reviewed=NotReviewed(cause="budget", reason="cap")),
        _fr("g", status="skipped", not_reviewed=NotReviewed(cause="content", reason="too big")),
    ]
    m = compute_metrics(
        uncovered,
        usage=Usage(calls=2),
        batches=2,
        files_reviewed_by_model=1,
        cost_usd=0.0,
        baseline_api_calls=7,
        baseline_cost_usd=0.1,
        duration_s=0.0,
    )
    counts = (m.files_reviewed, m.files_cached, m.files_skipped, m.files_not_reviewed)
    assert counts == (1, 3, 1, 2) and sum(counts) == m.files_total == 7
    assert m.cache_hit_rate == 0.75
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
