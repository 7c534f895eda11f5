"""The cache directory is restored from actions/cache: untrusted input an earlier run could
fill with anything a tar archive holds. Whatever is planted there — rows that name files,
pickles, links and hard links pointing outside, FIFOs, huge or deeply nested files, numbers out
of range — the review runs (cold where the state is dropped), reaches its normal verdict, and
nothing outside the cache directory changes (docs/security.md, §6.3).

Each wire test runs the real `gatebot review` against the loopback Gemini on a real repository
and snapshots the whole temporary tree around the cache directory before and after.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.metrics.history import HISTORY_FILE, history_path, load_history
from bot.review.cache import DB_NAME, ReviewCache
from bot.review.keys import cache_key
from bot.review.models import Finding
from bot.review.tokens import CALIBRATION_FILE, Calibration, load_calibration
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder
from tests.security.gate import Gate, changes, snapshot
from tests.security.strategies import fuzz_settings

MB = 1024 * 1024
MODULE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


def _pr(root: Path) -> tuple[str, str]:
    rb = RepoBuilder(root / "repo")
    base = rb.commit({"app.py": MODULE, "README.md": "# app\n"})
    head = rb.commit(
        {"app.py": MODULE + "\n\ndef mean(xs):\n    return total(xs) / len(xs)\n"},
        branch="feature",
        parents=[base],
    )
    return base, head


def _victims(root: Path) -> dict[str, Path]:
    """Files outside the cache that a planted name could point at."""
    victims = {"text": root / "victim.txt", "db": root / "victim.db", "dir": root / "victim-dir"}
    victims["text"].write_text("precious\n")
    conn = sqlite3.connect(victims["db"])
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('precious')")
    conn.commit()
    conn.close()
    victims["dir"].mkdir()
    (victims["dir"] / "keep.txt").write_text("precious\n")
    return victims


def _assert_reviewed_cold(run: Any, gemini: FakeGemini) -> None:
    assert run.code == 0, run.proc.stderr
    assert run.verdict["verdict"] == "pass"
    app = run.file("app.py")
    assert app["status"] == "reviewed" and app["covered"], app
    assert gemini.stats.generate_calls >= 1
    assert run.outside == [], run.outside


def _diskcache_db(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """A database in diskcache's layout, as the cache before this one stored it: each row may
    name a file (`filename`) that diskcache read, and deleted on eviction."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)")
    conn.execute(
        "CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL,"
        " expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB,"
        " size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB)"
    )
    conn.executemany(
        "INSERT INTO Cache (key, raw, store_time, access_time, size, mode, filename, value)"
        " VALUES (?, 1, 0, 0, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("INSERT INTO Settings VALUES ('size_limit', 1)")
    conn.commit()
    conn.close()


class _Boom:
    """Unpickling this creates a directory: proof that a pickled cache value was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_rows_naming_files_outside_and_pickles_touch_nothing(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    base, head = _pr(tmp_path)
    victims = _victims(tmp_path)
    marker = tmp_path / "pwned"
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    rel = os.path.relpath(victims["text"], gate.cache)
    _diskcache_db(
        gate.cache / DB_NAME,
        [
            ("k1", 10**9, 2, rel, None),  # file mode: read from, deleted on eviction
            ("k2", 10**9, 2, str(victims["db"]), None),
            ("k3", 10**9, 2, "../victim-dir", None),
            ("k4", 10, 4, None, pickle.dumps(_Boom(marker))),  # pickle mode
        ],
    )
    for _ in range(2):  # the first run drops the foreign database; the second uses ours
        run = gate.review(base, head)
        assert run.outside == [], run.outside
    assert not marker.exists(), "a pickled cache value was executed"
    assert run.file("app.py")["status"] == "cached"
    assert victims["text"].read_text() == "precious\n"


def test_our_own_table_with_a_filename_column_is_dropped(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    base, head = _pr(tmp_path)
    victims = _victims(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    conn = sqlite3.connect(gate.cache / DB_NAME)
    conn.execute(
        "CREATE TABLE reviews (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, "
        "size INTEGER NOT NULL, used REAL NOT NULL, filename TEXT) WITHOUT ROWID"
    )
    conn.execute("CREATE TRIGGER t AFTER INSERT ON reviews BEGIN DELETE FROM reviews; END")
    conn.execute("INSERT INTO reviews VALUES ('k', '{}', 1, 0, ?)", (str(victims["text"]),))
    conn.commit()
    conn.close()
    run = gate.review(base, head)
    _assert_reviewed_cold(run, gemini)
    assert any("dropped" in line for line in run.proc.stderr.splitlines()), run.proc.stderr
    with sqlite3.connect(gate.cache / DB_NAME) as db:
        kinds = {row[0] for row in db.execute("SELECT type FROM sqlite_master")}
    assert kinds == {"table", "index"}  # the planted trigger went with the database


@pytest.mark.parametrize(
    "planted",
    [
        DB_NAME,
        f"{DB_NAME}-journal",
        f"{DB_NAME}-wal",
        HISTORY_FILE,
        CALIBRATION_FILE,
    ],
)
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_links_planted_in_the_cache_point_nowhere(
    tmp_path: Path, gemini: FakeGemini, planted: str, kind: str
) -> None:
    base, head = _pr(tmp_path)
    victims = _victims(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    target = victims["db"] if planted.startswith(DB_NAME) else victims["text"]
    if kind == "symlink":
        (gate.cache / planted).symlink_to(target)
    else:
        os.link(target, gate.cache / planted)
    run = gate.review(base, head)
    _assert_reviewed_cold(run, gemini)
    assert victims["text"].read_text() == "precious\n"
    assert (gate.cache / HISTORY_FILE).is_file() and not (gate.cache / HISTORY_FILE).is_symlink()


def test_a_cache_directory_that_is_a_link_is_not_used(tmp_path: Path, gemini: FakeGemini) -> None:
    base, head = _pr(tmp_path)
    victims = _victims(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.symlink_to(victims["dir"], target_is_directory=True)
    run = gate.review(base, head)
    _assert_reviewed_cold(run, gemini)
    assert sorted(p.name for p in victims["dir"].iterdir()) == ["keep.txt"]
    assert "symbolic link" in run.proc.stderr


def test_fifos_and_directories_under_state_names_do_not_hang(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    base, head = _pr(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    os.mkfifo(gate.cache / HISTORY_FILE)
    os.mkfifo(gate.cache / CALIBRATION_FILE)
    (gate.cache / DB_NAME).mkdir()
    (gate.cache / DB_NAME / "inner").symlink_to(tmp_path / "victim.txt")
    (tmp_path / "victim.txt").write_text("precious\n")
    run = gate.review(base, head, timeout=60)
    _assert_reviewed_cold(run, gemini)
    assert (tmp_path / "victim.txt").read_text() == "precious\n"


HOSTILE_CALIBRATIONS: dict[str, bytes] = {
    "out of range": b'{"factor": 1e308, "samples": 3}',
    "NaN": b'{"factor": NaN, "samples": 3}',
    "Infinity": b'{"factor": Infinity, "samples": 3}',
    "huge integer": b'{"factor": 1.0, "samples": ' + b"9" * 5000 + b"}",
    "negative": b'{"factor": 1.0, "samples": -1}',
    "bool": b'{"factor": true, "samples": 1}',
    "deep nesting": b'{"factor": ' + b"[" * 100_000 + b"]" * 100_000 + b', "samples": 1}',
    "not an object": b"[1.0, 3]",
    "huge file": b'{"factor": 1.0, "samples": 1, "pad": "' + b"x" * (2 * MB) + b'"}',
    "not UTF-8": b'{"factor": 1.0, "samples": 1, "\xff": 0}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CALIBRATIONS))
def test_hostile_token_calibration_is_dropped(tmp_path: Path, name: str) -> None:
    (tmp_path / CALIBRATION_FILE).write_bytes(HOSTILE_CALIBRATIONS[name])
    assert load_calibration(tmp_path) == Calibration()
    assert not (tmp_path / CALIBRATION_FILE).exists()  # dropped: the next run warns no more


def test_hostile_calibration_and_history_over_the_wire(tmp_path: Path, gemini: FakeGemini) -> None:
    base, head = _pr(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    (gate.cache / CALIBRATION_FILE).write_bytes(HOSTILE_CALIBRATIONS["deep nesting"])
    good = json.loads(
        '{"kind": "review", "ts": "2026-01-01T00:00:00Z", "verdict": "pass", '
        '"provider": "gemini", "metrics": {}}'
    )
    lines = [
        json.dumps(good),
        json.dumps({**good, "metrics": {"cost_usd": 1e400}}).replace("Infinity", "1e400"),
        '{"kind": "review", "ts": "2026-01-01T00:00:00Z", "metrics": {"api_calls": NaN}}',
        "[" * 50_000 + "]" * 50_000,
        json.dumps({**good, "uncovered": 10**30}),
    ]
    (gate.cache / HISTORY_FILE).write_text("\n".join(lines) + "\n")
    run = gate.review(base, head)
    _assert_reviewed_cold(run, gemini)
    saved = json.loads((gate.cache / CALIBRATION_FILE).read_text())
    assert set(saved) == {"factor", "samples"} and saved["samples"] >= 1
    history = load_history(history_path(gate.cache))
    assert len(history.entries) == 2  # the good line and this run's
    assert len(history.problems) == 4


def test_a_huge_history_is_not_read(tmp_path: Path, gemini: FakeGemini) -> None:
    base, head = _pr(tmp_path)
    gate = Gate(tmp_path, gemini)
    gate.cache.mkdir()
    with open(gate.cache / HISTORY_FILE, "wb") as sparse:
        sparse.truncate(2 * 1024 * MB)  # 2 GB of holes: costs no disk, would cost the memory
    run = gate.review(base, head)
    _assert_reviewed_cold(run, gemini)
    assert (gate.cache / HISTORY_FILE).stat().st_size < MB  # only this run's record is kept
    assert len(load_history(history_path(gate.cache)).entries) == 1


# --- fuzz: whatever bytes are restored, nothing raises and nothing outside changes ----------


@fuzz_settings(60)
@given(data=st.binary(max_size=4096), name=st.sampled_from([DB_NAME, f"{DB_NAME}-journal"]))
def test_any_bytes_as_the_database_are_harmless(
    tmp_path_factory: Any, data: bytes, name: str
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    cache = root / "cache"
    cache.mkdir()
    (root / "victim.txt").write_text("precious\n")
    (cache / name).write_bytes(data)
    before = snapshot(root, exclude=(cache,))
    finding = Finding(path="a.py", line=1, severity="low", category="x", message="m")
    with ReviewCache.open(cache, 16 * MB) as store:
        assert store.get("a" * 64) is None
        assert store.put("a" * 64, "gemini-x", [finding]) == store.enabled
    assert changes(before, snapshot(root, exclude=(cache,))) == []


@fuzz_settings(100)
@given(st.binary(max_size=512))
def test_any_bytes_as_the_calibration_or_history_are_harmless(
    tmp_path_factory: Any, data: bytes
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / CALIBRATION_FILE).write_bytes(data)
    (root / HISTORY_FILE).write_bytes(data)
    calibration = load_calibration(root)
    assert 0.25 <= calibration.factor <= 4.0 and calibration.samples >= 0
    history = load_history(history_path(root))
    assert all(e.ts is not None for e in history.entries)


FIELDS = st.fixed_dictionaries(
    {
        "path": st.text(max_size=12),
        "old_path": st.none() | st.text(max_size=6),
        "old_hash": st.text(max_size=6),
        "new_hash": st.text(max_size=6),
        "old_mode": st.sampled_from([0o100644, 0o100755, 0o120000]),
        "new_mode": st.sampled_from([0o100644, 0o100755, 0o120000]),
        "view": st.sampled_from(["diff", "whole"]),
        "model": st.sampled_from(["gemini-2.5-flash", "gemini-2.5-pro", 'x"', "x\\"]),
        "prompt_version": st.sampled_from(["1", "2"]),
        "rules_hash": st.text(max_size=4),
        "context_lines": st.integers(0, 5),
    }
)


@fuzz_settings(300)
@given(FIELDS, FIELDS)
def test_an_entry_answers_only_for_its_own_change(a: dict[str, Any], b: dict[str, Any]) -> None:
    # No two different changes share a key: a planted entry cannot be aimed at another one.
    assert (cache_key(**a) == cache_key(**b)) == (a == b)
