"""The walkthrough: one line per file from the review's own calls, kept with the cache,
escaped and bounded in the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config.model import GatebotConfig
from bot.review.models import FileResult
from bot.review.pipeline import run_review
from bot.review.providers import select_provider
from bot.review.walkthrough import MAX_WALKTHROUGH_CHARS, walkthrough_md
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder

FAST: dict[str, Any] = {
    "attempts": 2,
    "initial_delay_s": 0,
    "max_delay_s": 0,
    "jitter_s": 0,
    "timeout_s": 5,
    "item_retries": 1,
}


def _file(path: str, summary: str | None) -> FileResult:
    return FileResult(path=path, status="reviewed", summary=summary)


def test_model_text_is_one_escaped_line() -> None:
    md = walkthrough_md(
        [
            _file("a.py", "Adds <img src=x onerror=alert(1)> and **bold** @admin\n| x | y |"),
            _file("b.py", "ok\u202eevil"),
            _file("c.py", None),
            _file("d.py", "   \x00  "),
        ]
    )
    assert md.startswith("<details><summary><b>Walkthrough</b>: what changed in 2 files")
    assert "<img" not in md and "@admin" not in md and "\u202e" not in md
    assert md.count("\n| `") == 2 and "| `c.py`" not in md
    assert md.rstrip().endswith("</details>")
    assert walkthrough_md([_file("c.py", None)]) == ""


def test_a_large_pr_keeps_the_walkthrough_within_its_share_of_the_summary() -> None:
    files = [
        _file(f"src/pkg{i}/module_{i}.py", "Refactors the order router " * 6) for i in range(2000)
    ]
    md = walkthrough_md(files)
    assert len(md) <= MAX_WALKTHROUGH_CHARS + 200
    assert "more in verdict.json (`files[].summary`)" in md


def test_the_lines_come_from_the_review_calls_and_survive_the_cache(
    tmp_path: Path, gemini_server: FakeGemini
) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({f"src/m{i}.py": f"x = {i}\n" for i in range(6)})
    head = rb.commit(
        {f"src/m{i}.py": f"x = {i}\ny = {i}\n" for i in range(6)}, branch="feature", parents=[base]
    )
    cfg = GatebotConfig(review={"gemini": FAST})
    provider = select_provider({"GEMINI_API_KEY": gemini_server.api_key}, cfg.review)
    first = run_review(rb.path, "main", head, cfg, tmp_path / "cache", provider)
    assert gemini_server.stats.generate_calls == 1
    lines = {f.path: f.summary for f in first.verdict.files}
    assert lines["src/m0.py"] == "Changes m0.py: 1 line(s) added, 0 removed"
    assert "<b>Walkthrough</b>: what changed in 6 files" in first.summary_md
    again = run_review(rb.path, "main", head, cfg, tmp_path / "cache", provider)
    assert gemini_server.stats.generate_calls == 1  # all from cache, lines included
    assert {f.path: f.summary for f in again.verdict.files} == lines
    off = GatebotConfig(review={"gemini": FAST, "walkthrough": False})
    quiet = run_review(
        rb.path,
        "main",
        head,
        off,
        tmp_path / "cache2",
        select_provider({"GEMINI_API_KEY": gemini_server.api_key}, off.review),
    )
    assert all(f.summary is None for f in quiet.verdict.files)
    assert "Walkthrough" not in quiet.summary_md
