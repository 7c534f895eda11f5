"""The review cache on a real SQLite database: hits, foreign entries, corruption, bounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.localstate import resolve_cache_dir
from bot.review.cache import DB_NAME, ReviewCache
from bot.review.keys import ABSENT, cache_key, content_hash
from bot.review.models import Finding

F = Finding(path="a.py", line=3, severity="high", category="bug", message="m", source="model")


def test_content_hash_is_of_the_raw_bytes() -> None:
    # No normalisation: whitespace can be meaning (a space after a trailing backslash).
    assert content_hash(b"a = 1\r\nb = 2  \n") != content_hash(b"a = 1\nb = 2\n")
    assert content_hash(b"rm -rf a\\\n/b\n") != content_hash(b"rm -rf a\\ \n/b\n")
    assert content_hash(b"a\n") == content_hash(b"a\n")
    assert content_hash(None) == ABSENT


def test_key_depends_on_every_part() -> None:
    base = dict(
        path="a.py",
        old_path=None,
        old_hash="o",
        new_hash="n",
        old_mode=0o100644,
        new_mode=0o100644,
        view="diff",
        model="m",
        prompt_version="1",
        rules_hash="r",
        context_lines=3,
    )
    k = cache_key(**base)
    for field, other in [
        ("path", "b.py"),
        ("old_path", "a.py"),
        ("old_hash", "x"),
        ("new_hash", "x"),
        ("old_mode", 0o100755),
        ("new_mode", 0o100755),
        ("view", "whole"),
        ("model", "m2"),
        ("prompt_version", "2"),
        ("rules_hash", "r2"),
        ("context_lines", 5),
    ]:
        assert cache_key(**{**base, field: other}) != k, field


def test_roundtrip_and_persistence(tmp_path: Path) -> None:
    with ReviewCache.open(tmp_path / "c", 10**7) as c:
        assert c.get("k") is None
        assert c.put("k", "gemini-x", [F])
    with ReviewCache.open(tmp_path / "c", 10**7) as c:
        hit = c.get("k")
        assert hit is not None and hit.model == "gemini-x" and hit.findings == [F]
        assert c.warnings == []


def _plant(directory: Path, rows: dict[str, object]) -> None:
    """Rows written straight into our table, as a crafted restored cache could hold them."""
    with ReviewCache.open(directory, 10**7):
        pass  # creates the schema
    conn = sqlite3.connect(directory / DB_NAME)
    with conn:
        for key, value in rows.items():
            size = len(value) + len(key) if isinstance(value, (str, bytes)) else 0
            if isinstance(value, str):
                size = len(value.encode()) + len(key)
            conn.execute("INSERT INTO reviews VALUES (?, ?, ?, 1.0)", (key, value, size))
    conn.close()


def test_foreign_entries_are_misses_not_crashes(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _plant(
        d,
        {
            "text": "not json",
            "json": '{"v": 1, "model": "m", "findings": [{"path": 1}]}',
            "future": '{"v": 99, "model": "m", "findings": []}',
            "extra": '{"v": 1, "model": "m", "findings": [], "approved": true}',
            "badmodel": '{"v": 1, "model": "../../x", "findings": []}',
            "nan": '{"v": 1, "model": "m", "findings": [], "stored_at": NaN}',
            "deep": "[" * 100_000 + "]" * 100_000,
        },
    )
    with ReviewCache.open(d, 10**7) as c:
        for key in ("text", "json", "future", "extra", "badmodel", "nan", "deep"):
            assert c.get(key) is None, key
        assert len(c.warnings) == 7, c.warnings
        assert c.put("good", "m", [F]) and c.get("good") is not None
    with ReviewCache.open(d, 10**7) as c:  # the foreign rows were deleted: no second warning
        assert c.get("text") is None and c.warnings == []


def test_corrupt_database_is_dropped(tmp_path: Path) -> None:
    d = tmp_path / "c"
    with ReviewCache.open(d, 10**7) as c:
        c.put("k", "m", [F])
    (d / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with ReviewCache.open(d, 10**7) as c:
        assert c.enabled and c.get("k") is None
        assert "dropped" in c.warnings[0] and "starting cold" in c.warnings[0]
        assert c.put("k", "m", [F]) and c.get("k") is not None
    assert sorted(p.name for p in d.iterdir()) == [DB_NAME]
    sqlite3.connect(d / DB_NAME).execute("select 1").fetchone()


def test_unusable_directory_runs_without_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with ReviewCache.open(blocker, 10**7) as c:
        assert not c.enabled
        assert c.get("k") is None and not c.put("k", "m", [F])
        assert "without a cache" in c.warnings[0]
        assert blocker.read_text() == "x"


def test_size_limit_evicts(tmp_path: Path) -> None:
    big = [F.model_copy(update={"message": "x" * 2000, "line": i + 1}) for i in range(20)]
    with ReviewCache.open(tmp_path / "c", 2_000_000) as c:
        for i in range(200):  # ~45 kB each: 9 MB written into a 2 MB cache
            c.put(f"k{i}", "m", big)
        assert c.volume() <= 2_000_000
        assert c.get("k0") is None and c.get("k199") is not None


def test_resolve_cache_dir() -> None:
    assert resolve_cache_dir(Path("x"), {"GATEBOT_CACHE_DIR": "y"}) == Path("x")
    assert resolve_cache_dir(None, {"GATEBOT_CACHE_DIR": "y"}) == Path("y")
    assert resolve_cache_dir(None, {}) == Path(".gatebot-cache")


def test_batch_writes_land_in_one_transaction_and_persist(tmp_path: Path) -> None:
    with ReviewCache.open(tmp_path / "c", 10 * 2**20) as cache:
        with cache.batch():
            for i in range(40):
                assert cache.put(f"k{i}", "gemini-2.5-flash", [F])
            assert cache.get("k0") is not None  # visible inside the transaction
        assert cache.warnings == []
    with ReviewCache.open(tmp_path / "c", 10 * 2**20) as again:
        hit = again.get("k39")
        assert hit is not None and hit.findings == [F]


def test_batch_without_a_store_is_a_no_op(tmp_path: Path) -> None:
    cache = ReviewCache(None, tmp_path)
    with cache.batch():
        assert cache.put("k", "m", []) is False
    assert cache.warnings == []
