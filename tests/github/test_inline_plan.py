"""Which findings become inline comments, and what a suggestion may contain (pure decisions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.github import inline
from bot.github.inline import FileLines, Planned
from bot.github.pulls import PostedComment
from bot.review.models import FileResult, Finding, Verdict

LINES = tuple(f"line {n}" for n in range(1, 41))
# Two hunks, as GitHub shows them: 3-12 and 20-25 of the new file.
DIFF = {"a.py": FileLines(((3, 12), (20, 25)), LINES)}


def finding(
    line: int | None, end: int | None = None, fix: str | None = None, **kw: object
) -> Finding:
    data: dict[str, object] = {
        "path": "a.py",
        "line": line,
        "end_line": end,
        "severity": "high",
        "category": "bug",
        "message": "bad",
        "source": "model",
        "suggestion": fix,
    }
    data.update(kw)
    return Finding.model_validate(data)


def verdict(*findings: Finding, covered: bool = True) -> Verdict:
    files = [FileResult(path="a.py", status="reviewed", covered=covered, findings=list(findings))]
    return Verdict(
        verdict="fail", base_sha="a" * 40, head_sha="b" * 40, provider="gemini", files=files
    )


def plan(*findings: Finding, mode: inline.CommentsMode = "suggestions") -> list[Planned]:
    return inline.plan(verdict(*findings), DIFF, mode)


def test_a_fix_inside_one_hunk_becomes_a_suggestion_for_exactly_its_lines() -> None:
    (p,) = plan(finding(5, 6, "new 5\nnew 6"))
    assert (p.comment.start_line, p.comment.line) == (5, 6)
    assert "```suggestion\nnew 5\nnew 6\n```" in p.comment.body
    assert p.has_suggestion


def test_a_fix_that_leaves_the_diff_is_never_suggested() -> None:
    assert plan(finding(11, 21, "x")) == []  # spans two hunks
    assert plan(finding(14, 15, "x")) == []  # between hunks
    assert plan(finding(40, 44, "x")) == []  # past the end of the file
    (p,) = plan(finding(11, 21, "x"), mode="findings")  # the finding alone, on its first line
    assert (p.comment.start_line, p.comment.line) == (None, 11) and not p.has_suggestion


def test_unsafe_or_pointless_fixes_are_dropped() -> None:
    for fix in (
        "ok\u202eevil",  # bidirectional override: Trojan Source
        "a\x00b",
        "a\x1bb",
        "x" * (inline.MAX_SUGGESTION_CHARS + 1),
        "\n".join(["y"] * (inline.MAX_SUGGESTION_LINES + 1)),
        "line 5",  # the line as it already reads
    ):
        assert plan(finding(5, None, fix)) == [], repr(fix[:20])


def test_backticks_in_a_fix_cannot_close_the_fence() -> None:
    (p,) = plan(finding(5, None, "s = '```'\n````"))
    assert "`````suggestion\ns = '```'\n````\n`````" in p.comment.body


def test_an_empty_fix_deletes_the_lines() -> None:
    (p,) = plan(finding(7, 8, ""))
    assert "```suggestion\n```" in p.comment.body


def test_untrusted_text_is_escaped_and_the_marker_comes_last() -> None:
    (p,) = plan(
        finding(
            5,
            None,
            "fixed <!-- gatebot:finding fp=0000000000000000 -->",
            message="<img src=x onerror=alert(1)> @admin ping",
        )
    )
    body = p.comment.body
    assert "<img" not in body.split("```")[0] and "@admin" not in body
    assert inline.parse_marker(body) == (p.fingerprint, False)
    assert p.fingerprint != "0000000000000000"


def test_suggestions_mode_comments_only_fixes_findings_mode_comments_all() -> None:
    findings = (finding(5, None, "fix"), finding(6))
    assert len(plan(*findings)) == 1
    assert len(plan(*findings, mode="findings")) == 2
    assert plan(*findings, mode="off") == []


def posted(p: Planned, *, resolved: bool = False, author_type: str = "Bot") -> PostedComment:
    body = (
        inline.resolved_body(p.comment.body, p.fingerprint, "c" * 40)
        if resolved
        else (p.comment.body)
    )
    return PostedComment(
        id=hash(p.fingerprint) % 10**9,
        path="a.py",
        line=p.comment.line,
        body=body,
        author="github-actions[bot]",
        author_type=author_type,
        in_reply_to=None,
    )


def test_reconcile_posts_once_and_resolves_only_what_the_gate_looked_at() -> None:
    (p,) = plan(finding(5, None, "fix"))
    again = inline.reconcile([p], [posted(p)], {"a.py"}, {"a.py"})
    assert again.post == [] and len(again.kept) == 1 and again.stale == []
    gone = inline.reconcile([], [posted(p)], {"a.py"}, {"a.py"})
    assert [c.id for c in gone.stale] == [posted(p).id]
    outage = inline.reconcile([], [posted(p)], set(), {"a.py"})  # a.py not covered this run
    assert outage.stale == []
    left = inline.reconcile([], [posted(p)], set(), set())  # a.py no longer in the PR
    assert len(left.stale) == 1
    back = inline.reconcile([p], [posted(p, resolved=True)], {"a.py"}, {"a.py"})
    assert back.post == [p]  # a finding that returns after its thread was resolved
    human = inline.reconcile([p], [posted(p, author_type="User")], {"a.py"}, {"a.py"})
    assert human.post == [p] and human.stale == []  # a person quoting our marker is not us


@given(
    hunks=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 8)), min_size=1, max_size=4),
    spans=st.lists(
        st.tuples(st.integers(1, 45), st.integers(0, 6), st.booleans()), min_size=1, max_size=8
    ),
)
def test_no_planned_comment_ever_leaves_a_hunk(
    hunks: list[tuple[int, int]], spans: list[tuple[int, int, bool]]
) -> None:
    ranges = tuple(sorted((s, min(s + n, 40)) for s, n in hunks))
    diff = {"a.py": FileLines(ranges, LINES)}
    findings = [finding(s, s + n, "fixed" if fix else None) for s, n, fix in spans]
    for mode in ("findings", "suggestions"):
        for p in inline.plan(verdict(*findings), diff, mode):  # type: ignore[arg-type]
            start = p.comment.start_line or p.comment.line
            assert any(lo <= start <= p.comment.line <= hi for lo, hi in ranges), p
