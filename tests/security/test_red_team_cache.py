"""Red-team regressions on the restored review cache (docs/security.md, §6.3 and §6.10): rows
that answer for content no review of this repository's gate computed, driven over the real wire
— a real repository, the real `gatebot review` as the Action runs it, the loopback GitHub and
Gemini. `Gate.run` checks that nothing outside the cache and output directories changed.

The cache key binds the raw bytes, the paths, the model, the prompt and the rules, but every
part of it is public: anyone can compute the key of the content they are about to push. Code a
pull request gets run in CI (its test suite) can save entries into that pull request's
actions/cache scope, which the gate's next run on the same pull request restores. So a row must
also prove who wrote it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.review.cache import DB_NAME, ReviewCache
from bot.review.providers.gemini import cache_seal_for
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.harness import HostileGemini, approve_everything
from tests.security.prgate import Gate

MARK = "FIXME-SECURITY"  # the loopback model reports a high finding on a line that has it


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


@pytest.fixture
def attackers_model() -> Iterator[HostileGemini]:
    # A model endpoint of the attacker's own, with a key of their own: it approves everything.
    server = HostileGemini(approve_everything, api_key="attackers-own-key").start()
    yield server
    server.stop()


def _rows(cache: Path) -> int:
    with sqlite3.connect(cache / DB_NAME) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0])


def test_rows_written_by_a_gatebot_run_without_the_key_are_not_trusted(
    gate: Gate, attackers_model: HostileGemini
) -> None:
    # The attacker runs gatebot itself, on the exact head they push, against their own model,
    # and plants the cache it wrote where the gate's next run restores it. Before, every file
    # was "from cache": 0 calls, no finding, `success` for code no model of ours saw.
    gate.main({"src/app.py": "def run():\n    return 1\n"})
    head = gate.push({"src/app.py": f"def run():\n    return 2  # {MARK}\n"})
    forged = gate.runner / "forged-cache"  # (the runner's files may change)
    planted = gate.run(
        head,
        args=("--cache-dir", str(forged)),
        GEMINI_API_KEY=attackers_model.api_key,
        GOOGLE_GEMINI_BASE_URL=attackers_model.url,
    )
    assert planted.check.conclusion == "success"  # the attacker's model said so
    assert _rows(forged) == 1
    shutil.rmtree(gate.out)
    gate.github.runs.clear()
    shutil.copytree(forged, gate.cache)

    run = gate.run(head)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"
    (f,) = run.verdict["files"]
    assert f["status"] == "reviewed", f
    assert any(x["category"] == "security" for x in f["findings"])
    assert gate.gemini is not None and gate.gemini.stats.paths_asked() == ["src/app.py"]
    assert "rows not sealed with this run's key are ignored" in run.proc.stderr
    # The review's own row replaced the planted one: the next run is a hit again, for free.
    gate.gemini.reset_stats()
    again = gate.run(head)
    assert again.check.conclusion == "failure"
    assert again.verdict["files"][0]["status"] == "cached"
    assert gate.gemini.stats.generate_calls == 0


def test_a_sealed_row_answers_only_for_its_own_key(tmp_path: Path) -> None:
    # A row the gate itself wrote (a clean answer for a harmless change) copied under the key
    # of the content the attacker pushes: the seal covers the key, so it is not a hit.
    seal = cache_seal_for("the-gates-key")
    with ReviewCache.open(tmp_path / "c", 10**7, seal_key=seal) as cache:
        assert cache.put("a" * 64, "gemini-3.8-flash", [])
    with sqlite3.connect(tmp_path / "c" / DB_NAME) as conn:
        value, size = conn.execute("SELECT value, size FROM reviews").fetchone()
        conn.execute("INSERT INTO reviews VALUES (?, ?, ?, 0)", ("b" * 64, value, size))
    with ReviewCache.open(tmp_path / "c", 10**7, seal_key=seal) as cache:
        assert cache.get("b" * 64) is None
        assert cache.get("a" * 64) is not None
    # Under another key (a rotated API key, another repository's secret) nothing is a hit.
    with ReviewCache.open(tmp_path / "c", 10**7, seal_key=cache_seal_for("another")) as cache:
        assert cache.get("a" * 64) is None
        assert len(cache.warnings) == 1
