"""summary.md: content and escaping of untrusted text."""

from __future__ import annotations

from bot.review.models import FileResult, Finding, Metrics, Verdict
from bot.review.summary import code, escape_md, render_summary


def _verdict(**kw) -> Verdict:
    base = dict(
        verdict="neutral",
        base_sha="a" * 40,
        head_sha="b" * 40,
        provider="gemini+local",
        degraded=True,
        degraded_reason="provider returned 503",
        metrics=Metrics(
            api_calls=2,
            baseline_api_calls=40,
            cost_usd=0.01,
            baseline_cost_usd=0.5,
            cache_hit_rate=0.5,
            files_total=3,
        ),
    )
    return Verdict(**{**base, **kw})


def test_escape_md_neutralises_markup() -> None:
    evil = "ok](http://evil) <img src=x onerror=alert(1)> @org/team `x` *b* | col\nnext"
    out = escape_md(evil)
    assert "<img" not in out and "&lt;img" in out
    assert "\\]" in out and "@org" not in out and "\n" not in out
    assert "\\|" in out and "\\`x\\`" in out and "\\*b\\*" in out
    assert len(escape_md("x" * 5000)) <= 700


def test_code_span_survives_backticks_and_pipes() -> None:
    assert code("a.py") == "`a.py`"
    assert code("we`ird|name") == "``we`ird\\|name``"


def test_summary_content() -> None:
    files = [
        FileResult(
            path="a.py",
            status="reviewed",
            model="gemini-2.5-flash",
            tier="standard",
            findings=[
                Finding(
                    path="a.py",
                    line=4,
                    severity="high",
                    category="bug",
                    message="**boom** <script>",
                    source="model",
                )
            ],
        ),
        FileResult(
            path="x.py",
            status="reviewed",
            not_reviewed={"cause": "provider", "reason": "not reviewed by the model: 503"},
        ),
        FileResult(path="yarn.lock", status="skipped", reason="lock file"),
        FileResult(path=".github/workflows/ci.yml", status="reviewed", needs_human=True),
    ]
    md = render_summary(_verdict(files=files), ("1 file(s) not covered: x.py",), ["cache warn"])
    assert md.startswith("## ⚠️ gatebot review: **neutral**")
    assert "reviewed locally because provider returned 503" in md
    assert "| `yarn.lock` | skipped | lock file | 0 |" in md
    assert "**not reviewed** (provider): 503" in md and "**needs human review**" in md
    assert "### Not reviewed (1)" in md and "- `x.py`: 503" in md
    assert "\\*\\*boom\\*\\* &lt;script&gt;" in md and "<script>" not in md
    assert "| Model calls | 2 | 40 |" in md and "$0.5000" in md
    assert "cache warn" in md
    # Uncovered and protected files come first in the table.
    rows = [ln for ln in md.splitlines() if ln.startswith("| `")]
    assert rows[0].startswith("| `x.py`") and rows[-1].startswith("| `yarn.lock`")


def test_big_pr_summary_is_bounded() -> None:
    files = [FileResult(path=f"f{i}.py", status="reviewed") for i in range(1000)]
    md = render_summary(_verdict(files=files, verdict="pass", degraded=False))
    assert "800 more files" in md and len(md) < 60_000
