"""Fuzz the model-answer parser: whatever the model (or a proxy in front of it) returns, every
asked file ends up answered or marked bad (and so retried or left uncovered), and findings only
ever land on the files that were asked, on real line numbers.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.review.providers.gemini import parse_answer
from bot.review.types import ReviewItem
from tests.security.strategies import fuzz_settings, yaml_values

FUZZ = fuzz_settings(200)


def _item(path: str, part: int = 0, parts: int = 1, lines: tuple[int, ...] = (3, 4)) -> ReviewItem:
    return ReviewItem(
        path=path,
        diff_text="@@ -1,2 +1,4 @@\n a\n+b\n",
        changed_lines=frozenset(lines),
        tier="standard",
        model="gemini-2.5-flash",
        cache_key=f"key-{path}-{part}",
        est_tokens=100,
        part=part,
        parts=parts,
    )


ITEMS = [
    _item("src/app.py"),
    _item("src/big.py", 0, 2, (10, 11)),
    _item("src/big.py", 1, 2, (500,)),
    _item("docs/ünïcode name.md", lines=(1,)),
]

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)

# Block numbers: the batch's (1..4), strays (0, negative, past the end) and non-numbers.
numbers = st.integers(min_value=-2, max_value=6) | st.booleans() | any_json
findings = st.fixed_dictionaries(
    {},
    optional={
        "file": numbers,
        "line": st.none() | st.integers(min_value=-3, max_value=600) | any_json,
        "end_line": st.none() | st.integers(min_value=-3, max_value=600) | any_json,
        "severity": st.sampled_from(["info", "LOW", " medium ", "high", "critical", "fatal", ""])
        | any_json,
        "category": st.text(max_size=60) | any_json,
        "message": st.text(max_size=300)
        | st.sampled_from(["::error::x", "</details>", "@org/team", "%0A::warning::y"])
        | any_json,
        "path": st.sampled_from(["src/other.py", "../../etc/passwd", "/abs.py", ""]) | any_json,
    },
)
# Mostly valid answers, so the fuzzer also reaches the finding mapping, not only the rejections.
shaped_findings = st.fixed_dictionaries(
    {
        "file": st.integers(min_value=0, max_value=5),
        "line": st.none() | st.sampled_from([1, 3, 4, 10, 11, 500]) | st.integers(-3, 600),
        "end_line": st.none() | st.integers(min_value=-3, max_value=600),
        "severity": st.sampled_from(["info", "low", "Medium", "HIGH ", "critical"]),
        "category": st.text(max_size=60),
        "message": st.text(max_size=2500)
        | st.sampled_from(["::error::x", "</details>", "@org/team", "%0A::warning::y", " "]),
    }
)
shaped = st.fixed_dictionaries(
    {
        "reviewed": st.lists(st.integers(min_value=-1, max_value=6), max_size=8),
        "findings": st.lists(shaped_findings, max_size=6),
    }
)
loose = st.fixed_dictionaries(
    {},
    optional={
        "reviewed": st.lists(numbers, max_size=8) | any_json,
        "findings": st.lists(findings | any_json, max_size=6) | any_json,
    },
)
answers = st.one_of(
    shaped.map(json.dumps),
    loose.map(json.dumps),
    any_json.map(json.dumps),
    yaml_values.map(lambda v: json.dumps(v, default=str)),
    st.text(max_size=200),
    st.none(),
)


def check(text: str | None) -> None:
    result = parse_answer(text, ITEMS)
    keys = {it.cache_key for it in ITEMS}
    # Every asked item is answered or bad (then retried / uncovered), never both, never lost.
    assert set(result.ok) | set(result.bad) == keys
    assert not set(result.ok) & set(result.bad)
    assert set(result.ok) <= keys
    by_key = {it.cache_key: it for it in ITEMS}
    for key, found in result.ok.items():
        item = by_key[key]
        for f in found:
            assert f.path == item.path, "a finding moved to another file"
            assert f.source == "model"
            assert f.line is None or f.line >= 1
            assert f.end_line is None or (f.line is not None and f.end_line >= f.line)
            if f.in_diff:
                assert f.line is not None
                span = range(f.line, (f.end_line or f.line) + 1)
                assert any(n in item.changed_lines for n in span)
            assert 0 < len(f.message) <= 2000
    for reason in result.bad.values():
        assert isinstance(reason, str) and reason
    # A block is answered only if the answer names it: by number in `reviewed` or a finding.
    if result.unparseable:
        assert not result.ok
        return
    data = json.loads(text or "")
    named = [*data["reviewed"], *(f.get("file") for f in data["findings"] if isinstance(f, dict))]
    numbers = {n for n in named if type(n) is int}
    for number, item in enumerate(ITEMS, start=1):
        if item.cache_key in result.ok:
            assert number in numbers, (number, named)


@FUZZ
@given(answers)
def test_any_answer_maps_onto_the_asked_files(text: str | None) -> None:
    check(text)


def test_findings_about_unasked_files_are_ignored() -> None:
    text = json.dumps(
        {
            "reviewed": [0, -1, 5, True],
            "findings": [
                {"file": n, "path": "src/app.py", "line": 1, "end_line": None,
                 "severity": "critical", "category": "x", "message": "m"}
                for n in (0, -1, 5, 10**9, True, "1", None)
            ],
        }
    )  # fmt: skip
    result = parse_answer(text, ITEMS)
    assert not result.ok
    assert set(result.bad.values()) == {"missing from the answer"}


def test_well_formed_answer_is_accepted() -> None:
    text = json.dumps(
        {
            "reviewed": [1, 2, 3, 4],
            "findings": [
                {"file": 1, "line": 3, "end_line": 4, "severity": "HIGH",
                 "category": "Bug Risk", "message": " boom "},
                {"file": 3, "line": 500, "end_line": None, "severity": "low",
                 "category": "bug", "message": "second part"},
            ],
        }
    )  # fmt: skip
    result = parse_answer(text, ITEMS)
    assert not result.bad
    (finding,) = result.ok["key-src/app.py-0"]
    assert (finding.severity, finding.line, finding.in_diff) == ("high", 3, True)
    assert finding.message == "boom"
    # the two parts of src/big.py are told apart by their block numbers
    assert result.ok["key-src/big.py-0"] == []
    (part2,) = result.ok["key-src/big.py-1"]
    assert (part2.path, part2.line, part2.in_diff) == ("src/big.py", 500, True)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"reviewed": [1], "findings": 5}),
        json.dumps({"reviewed": [1], "findings": [{"file": 1, "line": 3, "message": 5}]}),
        "[" * 100_000,
        '{"reviewed": ' + "[" * 100_000,
    ],
    ids=["findings-not-a-list", "finding-malformed", "deep-nesting", "deep-reviewed"],
)
def test_odd_answers_mark_the_file_bad(text: str) -> None:
    check(text)
