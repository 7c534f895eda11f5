"""Pure outlets: workflow commands, $GITHUB_OUTPUT, truncation, the summary, SARIF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import UsageError
from bot.github.annotations import annotations_for, level_for
from bot.github.commands import add_mask, annotation_commands, command, escape_property
from bot.github.limits import CHECK_TEXT_LIMIT, truncate
from bot.github.outputs import format_outputs, write_outputs
from bot.github.sarif import to_sarif
from bot.github.summary import render_summary
from bot.review.models import FileResult, Finding
from tests.github.runner import parse_output_file
from tests.github.verdicts import verdict


def test_command_escaping_matches_the_runner() -> None:
    line = command("error", "50% done\r\nnext", {"file": "a,b:c.py", "title": "x%y\n"})
    assert line == "::error file=a%2Cb%3Ac.py,title=x%25y%0A::50%25 done%0D%0Anext"
    assert escape_property("k=v") == "k=v"


def test_annotation_command_has_line_range_and_title() -> None:
    v = verdict(0, extra_files=[])
    v.files[0].findings.append(
        Finding(
            path="src/a.py", line=3, end_line=5, severity="critical", category="sec", message="bad"
        )
    )
    (a,) = annotations_for(v)
    lines, omitted = annotation_commands([a])
    assert lines == ["::error file=src/a.py,line=3,endLine=5,title=critical%3A sec::bad"]
    assert omitted == 0


def test_runner_limits_most_severe_first() -> None:
    v = verdict(25, severity="high")
    v.files[0].findings.extend(
        Finding(path="src/app.py", line=100 + i, severity="medium", category="c", message="m")
        for i in range(12)
    )
    v.files[0].findings.append(
        Finding(path="src/app.py", line=500, severity="critical", category="c", message="crit")
    )
    anns = annotations_for(v)
    lines, omitted = annotation_commands(anns)
    errors = [ln for ln in lines if ln.startswith("::error")]
    warnings = [ln for ln in lines if ln.startswith("::warning")]
    assert len(errors) == 10 and len(warnings) == 10
    assert omitted == (26 - 10) + (12 - 10)
    assert errors[0].endswith("::crit")  # the critical one is never among the dropped


def test_levels_are_relative_to_the_blocking_threshold() -> None:
    assert level_for("high", "high") == "failure"
    assert level_for("high", "critical") == "warning"
    assert level_for("low", "high") == "notice"
    assert level_for("info", "info") == "failure"


def test_findings_off_the_diff_or_without_line_are_not_annotated() -> None:
    v = verdict(0)
    v.files[0].findings.extend(
        [
            Finding(path="a", line=None, severity="high", category="c", message="whole file"),
            Finding(path="a", line=4, severity="high", category="c", message="x", in_diff=False),
            Finding(path="a", line=9, severity="high", category="c", message="yes"),
        ]
    )
    assert [a.message for a in annotations_for(v)] == ["yes"]


def test_add_mask_per_line() -> None:
    assert add_mask("") is None
    assert add_mask("abc\ndef") == "::add-mask::abc\n::add-mask::def"


def test_outputs_round_trip_multiline_and_injection(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hostile = "line1\nverdict=pass\nEOF"
    write_outputs(out, {"verdict": "fail", "note": hostile})
    parsed = parse_output_file(out)
    assert parsed == {"verdict": "fail", "note": hostile}


def test_output_names_are_checked() -> None:
    with pytest.raises(UsageError, match="invalid step output name"):
        format_outputs({"a<<b": "x"})


def test_truncate_keeps_limit_and_says_so() -> None:
    text = "\n".join(f"| row {i} | {'x' * 80} |" for i in range(2000))
    cut = truncate(text, CHECK_TEXT_LIMIT)
    assert len(cut) <= CHECK_TEXT_LIMIT
    assert "**Truncated:**" in cut
    assert cut.split("\n\n> **Truncated:**")[0].endswith("|")  # cut at a row boundary
    assert truncate("short", CHECK_TEXT_LIMIT) == "short"


def test_summary_lists_files_status_and_costs() -> None:
    v = verdict(
        2,
        extra_files=[FileResult(path="big.py", status="skipped", reason="x", covered=False)],
        uncovered=["big.py"],
    )
    v.files[0].findings[0] = (
        v.files[0]
        .findings[0]
        .model_copy(
            update={"message": "<img src=x> @admin [link](http://x) a|b", "path": "we`ird.py"}
        )
    )
    md = render_summary(v, ["a note"])
    assert "gatebot review: **fail**" in md
    assert "2 blocking findings" in md
    assert "| `poetry.lock` | skipped | 0 | lock file |" in md
    assert "| `src/cached.py` | from cache |" in md
    assert "### Not reviewed (1)" in md and "- `big.py`: x" in md
    assert "\n> a note\n" in md
    assert "<img" not in md and "@admin" not in md and "[link](http" not in md
    assert "``we`ird.py:1``" in md
    assert (
        "| 1 | 1 | 1.0 | 1,200 | 300 | 0 | 0.0021 | 3 | 0.0150 | $0.0129 (86% lower) | 50% |" in md
    )


def test_sarif_shape() -> None:
    doc = to_sarif(verdict(3))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "gatebot"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["gatebot/security"]
    assert len(run["results"]) == 3
    res = run["results"][0]
    assert res["level"] == "error"
    loc = res["locations"][0]["physicalLocation"]
    assert loc == {"artifactLocation": {"uri": "src/app.py"}, "region": {"startLine": 1}}
    json.dumps(doc)  # serialisable


def _unescape(value: str, codes: tuple[str, ...] = ("%0D", "%0A", "%3A", "%2C")) -> str:
    """The runner's decoding: each %XX code back to its character, %25 last."""
    for enc in codes:
        value = value.replace(enc, chr(int(enc[1:], 16)))
    return value.replace("%25", "%")


@given(st.text())
def test_property_escaping_is_lossless_and_inert(value: str) -> None:
    escaped = escape_property(value)
    assert not any(c in escaped for c in ",:\r\n")
    assert _unescape(escaped) == value
    line = command("warning", value, {"file": value})
    assert "\n" not in line and "\r" not in line
    # The runner splits at the first "::" after the properties: a value cannot move it.
    head, _, message = line[2:].partition("::")
    assert head == f"warning file={escaped}"
    assert _unescape(message, ("%0D", "%0A")) == value
