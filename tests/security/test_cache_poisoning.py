"""The review cache is restored from actions/cache: untrusted bytes. A planted entry must never
run code, never be taken for something it is not, and only ever answer for the exact change it
was computed for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import diskcache
from hypothesis import given
from hypothesis import strategies as st

from bot.review.cache import ReviewCache
from bot.review.models import Finding
from bot.review.normalize import cache_key
from tests.security.strategies import fuzz_settings

MB = 1024 * 1024


class _Boom:
    """Unpickling this creates a file: proof that a pickled cache value was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _plant(directory: Path, key: str, value: Any) -> None:
    # Written with diskcache's default Disk, which pickles anything that is not str/bytes/number:
    # exactly what a crafted cache restored from CI storage could hold.
    with diskcache.Cache(str(directory)) as raw:
        raw.set(key, value)


def test_a_pickled_value_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cache_dir = tmp_path / "cache"
    _plant(cache_dir, "k" * 64, _Boom(marker))
    with ReviewCache.open(cache_dir, 16 * MB) as cache:
        assert cache.enabled
        assert cache.get("k" * 64) is None
        assert any("k" * 12 in w for w in cache.warnings), cache.warnings
    assert not marker.exists(), "a pickled cache value was executed"


def test_a_value_that_is_not_ours_is_a_miss(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    planted = {
        "a" * 64: '{"v": 1, "model": "m", "findings": [], "approved": true}',  # unknown field
        "b" * 64: '{"v": 99, "model": "m", "findings": []}',  # another format version
        "c" * 64: "not json",
        "d" * 64: 12345,
        "e" * 64: b"\x00\xff",
    }
    for key, value in planted.items():
        _plant(cache_dir, key, value)
    with ReviewCache.open(cache_dir, 16 * MB) as cache:
        for key in planted:
            assert cache.get(key) is None, key
        assert len(cache.warnings) == len(planted)


def test_our_own_entries_round_trip(tmp_path: Path) -> None:
    finding = Finding(path="a.py", line=3, severity="high", category="bug", message="m")
    with ReviewCache.open(tmp_path / "cache", 16 * MB) as cache:
        assert cache.put("f" * 64, "gemini-2.5-flash", [finding])
        got = cache.get("f" * 64)
    assert got is not None and got.findings == [finding]


fields = st.fixed_dictionaries(
    {
        "path": st.text(max_size=12),
        "old_hash": st.text(max_size=6),
        "new_hash": st.text(max_size=6),
        "model": st.sampled_from(["gemini-2.5-flash", "gemini-2.5-pro", 'x"', "x\\"]),
        "prompt_version": st.sampled_from(["1", "2"]),
        "rules_hash": st.text(max_size=4),
        "context_lines": st.integers(0, 5),
    }
)


@fuzz_settings(300)
@given(fields, fields)
def test_an_entry_answers_only_for_its_own_change(a: dict[str, Any], b: dict[str, Any]) -> None:
    # No two different (path, old, new, model, prompt, rules, context) share a key: a planted
    # entry cannot be aimed at a different change.
    assert (cache_key(**a) == cache_key(**b)) == (a == b)
