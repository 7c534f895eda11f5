"""A push to an open PR: the summary says what changed since the previous head and what this
run sent, exactly (GitHub's real `pull_request.synchronize` payload, its `before`)."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.github.prworld import PrWorld

BASE = {f"src/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(3)}
HEAD = {f"src/m{i}.py": f"def f{i}():\n    return {i} + 1\n" for i in range(3)}


def test_only_what_the_push_changed_is_sent_and_the_summary_says_so(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    world = PrWorld(tmp_path, github_server, gemini_server)
    first_head = world.open(BASE, HEAD)
    assert world.review().code == 0
    assert sorted(gemini_server.stats.paths_asked()) == sorted(HEAD)

    second_head = world.push({"src/m1.py": "def f1():\n    return 42\n"})
    gemini_server.reset_stats()
    run = world.review(world.pull_request(before=first_head))
    assert run.code == 0, run.stderr[-3000:]
    assert gemini_server.stats.paths_asked() == ["src/m1.py"]  # only the new content
    assert f"### Since the last push (`{first_head[:12]}` → `{second_head[:12]}`)" in run.summary
    assert (
        "1 file changed since the last push (1 sent to the model, 0 from cache or skipped); "
        "2 carried over unchanged, none sent again." in run.summary
    )
    assert "| `src/m1.py` | changed | sent to the model |" in run.summary
    assert "| `src/m0.py` | carried over | from cache |" in run.summary
    (check,) = github_server.runs_for(second_head)
    assert check.summary is not None and "### Since the last push" in check.summary


def test_a_force_push_is_compared_by_content_and_says_why(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    world = PrWorld(tmp_path, github_server, gemini_server)
    world.open(BASE, HEAD)
    gone = "0123456789abcdef0123456789abcdef01234567"  # rewritten away: not in the clone
    run = world.review(world.pull_request(before=gone))
    assert run.code == 0, run.stderr[-3000:]
    assert "Not compared: the previous head is not in this clone" in run.summary
