"""The review cache on a real diskcache directory: hits, foreign entries, corruption, bounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import diskcache

from bot.review.cache import ReviewCache, resolve_cache_dir
from bot.review.models import Finding
from bot.review.normalize import cache_key, content_hash, normalise_text

F = Finding(path="a.py", line=3, severity="high", category="bug", message="m", source="model")


def test_normalised_hash_ignores_line_endings_and_trailing_space() -> None:
    assert content_hash("a = 1\r\nb = 2  \n\n\n") == content_hash("a = 1\nb = 2\n")
    assert content_hash("a = 1\n") != content_hash("a = 2\n")
    assert content_hash("  a\n") != content_hash("a\n")  # indentation is content
    assert normalise_text("x \r\ny\t\n").split("\n") == ["x", "y"]  # line numbers kept
    assert content_hash(None, "abc") == "blob:abc"
    assert content_hash(None) == "absent"


def test_key_depends_on_every_part() -> None:
    base = dict(
        path="a.py",
        old_hash="o",
        new_hash="n",
        model="m",
        prompt_version="1",
        rules_hash="r",
        context_lines=3,
    )
    k = cache_key(**base)
    for field, other in [
        ("path", "b.py"),
        ("old_hash", "x"),
        ("new_hash", "x"),
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


def test_foreign_entries_are_misses_not_crashes(tmp_path: Path) -> None:
    d = tmp_path / "c"
    raw = diskcache.Cache(str(d))
    raw.set("pickled", {"findings": []})  # a pickle: refused, never unpickled
    raw.set("text", "not json")
    raw.set("json", '{"v": 1, "model": "m", "findings": [{"path": 1}]}')
    raw.set("bytes", b"\x00\x01")
    raw.set("future", '{"v": 99, "model": "m", "findings": []}')
    raw.close()
    with ReviewCache.open(d, 10**7) as c:
        for key in ("pickled", "text", "json", "bytes", "future"):
            assert c.get(key) is None, key
        assert len(c.warnings) == 5
        assert c.put("good", "m", [F]) and c.get("good") is not None


def test_corrupt_database_is_set_aside(tmp_path: Path) -> None:
    d = tmp_path / "c"
    with ReviewCache.open(d, 10**7) as c:
        c.put("k", "m", [F])
    (d / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with ReviewCache.open(d, 10**7) as c:
        assert c.enabled and c.get("k") is None
        assert "unusable" in c.warnings[0]
        assert c.put("k", "m", [F]) and c.get("k") is not None
    assert (d / "cache.db.corrupt").exists()
    sqlite3.connect(d / "cache.db").execute("select 1").fetchone()


def test_unusable_directory_runs_without_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with ReviewCache.open(blocker, 10**7) as c:
        assert not c.enabled
        assert c.get("k") is None and not c.put("k", "m", [F])
        assert "without a cache" in c.warnings[0]


def test_size_limit_evicts(tmp_path: Path) -> None:
    big = [F.model_copy(update={"message": "x" * 2000, "line": i + 1}) for i in range(20)]
    with ReviewCache.open(tmp_path / "c", 2_000_000) as c:
        for i in range(200):  # ~45 kB each: 9 MB written into a 2 MB cache
            c.put(f"k{i}", "m", big)
        assert c._store is not None
        assert c._store.volume() < 2_500_000
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
