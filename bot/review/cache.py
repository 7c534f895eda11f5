"""The review cache: model findings per file, keyed by content (bot.review.normalize.cache_key).

The cache directory is restored from actions/cache, so the database in it is untrusted input
(docs/security.md, §6.3). The store is one SQLite table with every value inline: no row can
name a file, so nothing read from the cache can make gatebot read, write or delete a path (the
file-backed values of diskcache, used before, stored a file name per row and deleted that path
on eviction). On open the database must be a plain regular file with exactly our schema (no
triggers, views or extra tables), within twice the size bound; anything else is dropped with
one warning and the run starts cold. SQLite runs with `trusted_schema=OFF`, `cell_size_check`
and no memory mapping, the hardening SQLite documents for databases of unknown origin.

Values are our own JSON, validated with pydantic on every read; a row that is not ours is a
miss plus a warning and is deleted. Every part of a cache key is public (bot/review/keys.py):
anyone can write a row for the content they push, and code a PR gets run in CI can save into
the PR's actions/cache scope. So each value is sealed (an HMAC over key and value, keyed by a
secret derived from the provider's API key, which only the gate's step holds); a row without
this run's seal is a miss. The size bound is kept by evicting the least recently used rows.
Every storage problem is a warning, never a crash: the cache only ever saves money.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.config.env import CACHE_DIR
from bot.review import restored
from bot.review.models import Finding

log = logging.getLogger(__name__)

CACHE_ENV = CACHE_DIR
VALUE_VERSION = 2  # 2: sealed values
DB_NAME = "cache.db"
# SQLite opens these beside the database by name: each must be absent or a plain file.
_SIDE_FILES = (DB_NAME, f"{DB_NAME}-journal", f"{DB_NAME}-wal", f"{DB_NAME}-shm")
SCHEMA_VERSION = 7301  # PRAGMA user_version of our format (any other value: not ours)
_SCHEMA = (
    (
        "table",
        "reviews",
        "CREATE TABLE reviews (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, "
        "size INTEGER NOT NULL, used REAL NOT NULL) WITHOUT ROWID",
    ),
    ("index", "reviews_used", "CREATE INDEX reviews_used ON reviews (used)"),
)
# One cached answer: a file's findings. Larger rows are not ours (the writer never makes them).
MAX_VALUE_BYTES = 256 * 1024
_KEY = re.compile(r"[\w#:.-]{1,128}", re.ASCII)
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
# Eviction trims to this fraction of the bound, so a full cache does not evict on every write.
_EVICT_TO = 0.9

_STORAGE_ERRORS = (sqlite3.Error, OSError, restored.StateError)


class _Foreign(ValueError):
    pass


class CachedReview(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    v: int = VALUE_VERSION
    model: str
    findings: list[Finding] = Field(max_length=1000)
    summary: str | None = Field(None, max_length=1000)  # the walkthrough line (untrusted text)
    stored_at: float = 0.0
    seal: str = Field("", max_length=64)  # HMAC of key and value (ReviewCache._seal)

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not _MODEL.fullmatch(value):
            raise ValueError("not a model name")
        return value


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    # Values come back as bytes: a TEXT column holding invalid UTF-8 is then a foreign row
    # (dropped), not a decoding error that would end the cache for the run.
    conn.text_factory = bytes
    try:
        if hasattr(conn, "setlimit"):  # Python 3.11+; the value check in get() holds anyway
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 4 * MAX_VALUE_BYTES)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        for pragma in (
            "trusted_schema = OFF",
            "cell_size_check = ON",
            "mmap_size = 0",
            "journal_mode = DELETE",
            "synchronous = NORMAL",
        ):
            conn.execute(f"PRAGMA {pragma}")
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_problem(conn: sqlite3.Connection) -> str | None:
    """None when the database is empty or exactly ours; else what is wrong."""
    rows = [
        tuple(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in row)
        for row in conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    ]
    if not rows:
        return None
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        return f"format {version}, not {SCHEMA_VERSION}"
    if sorted(rows, key=str) != sorted(_SCHEMA, key=str):
        names = ", ".join(f"{r[0]} {r[1]!r}" for r in rows)[:200]
        return f"unexpected schema ({names})"
    bad = conn.execute(
        "SELECT COUNT(*) FROM reviews WHERE typeof(key) != 'text' OR length(key) > 128"
        " OR typeof(value) != 'text' OR typeof(size) != 'integer' OR size < 0"
        " OR typeof(used) NOT IN ('real', 'integer')"
    ).fetchone()[0]
    if bad:
        return f"{bad} malformed row(s)"
    return None


class ReviewCache:
    """Open with `ReviewCache.open(...)`; the constructor does no I/O."""

    def __init__(
        self,
        store: sqlite3.Connection | None,
        directory: Path,
        size_limit_bytes: int = 256 * 2**20,
        seal_key: bytes = b"",
    ) -> None:
        self._store = store
        self._seal_key = seal_key
        self._unsealed = 0  # rows refused for their seal (one warning per run)
        self.directory = directory
        self.size_limit = size_limit_bytes
        self.warnings: list[str] = []
        self._volume = 0
        self._in_batch = False

    @property
    def enabled(self) -> bool:
        return self._store is not None

    @classmethod
    def open(cls, directory: Path, size_limit_bytes: int, seal_key: bytes = b"") -> ReviewCache:
        """The cache in `directory`; `seal_key` signs and checks every row (see the module
        docstring: bot/review/providers/gemini.py derives it from the API key)."""
        warnings: list[str] = []
        problem = restored.directory_problem(directory)
        if problem:
            cache = cls(None, directory, size_limit_bytes, seal_key)
            cache._warn(f"review cache not used: {problem}; running without a cache")
            return cache
        try:
            conn, volume = cls._open_store(directory, size_limit_bytes, warnings)
        except _STORAGE_ERRORS as first:
            # A corrupt or foreign database: drop it and start empty, so this run saves a
            # healthy cache again.
            warning = f"review cache {directory} dropped ({_short(first)}); starting cold"
            try:
                cls._drop(directory)
                conn, volume = cls._open_store(directory, size_limit_bytes, [])
            except _STORAGE_ERRORS as second:
                cache = cls(None, directory, size_limit_bytes, seal_key)
                cache._warn(
                    f"review cache {directory} unusable ({_short(second)}); running without a cache"
                )
                return cache
            warnings.append(warning)
        cache = cls(conn, directory, size_limit_bytes, seal_key)
        cache._volume = volume
        for warning in warnings:
            cache._warn(warning)
        return cache

    @staticmethod
    def _drop(directory: Path) -> None:
        for name in _SIDE_FILES:
            restored.clear_entry(directory, name)
            (directory / name).unlink(missing_ok=True)

    @classmethod
    def _open_store(
        cls, directory: Path, size_limit_bytes: int, warnings: list[str]
    ) -> tuple[sqlite3.Connection, int]:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _SIDE_FILES:
            removed = restored.clear_entry(directory, name)
            if removed:
                warnings.append(f"review cache: {removed}")
        db = directory / DB_NAME
        if db.exists() and db.stat().st_size > 2 * size_limit_bytes + 2**20:
            raise restored.StateError(f"{DB_NAME} is over twice the size bound")
        conn = _connect(db)
        try:
            problem = _schema_problem(conn)
            if problem:
                raise restored.StateError(f"{DB_NAME}: {problem}")
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                if not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                    for _kind, _name, sql in _SCHEMA:
                        conn.execute(sql)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            count, volume = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM reviews"
            ).fetchone()
            if volume > 2 * size_limit_bytes + 2**20:
                raise restored.StateError(f"{DB_NAME}: row sizes do not add up ({count} rows)")
        except BaseException:
            conn.close()
            raise
        return conn, int(volume)

    def _warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def _fail(self, what: str, exc: BaseException) -> None:
        """A storage error mid-run: warn once and stop using the cache for this run."""
        self._warn(f"review cache {what} failed ({_short(exc)}); running without a cache")
        self.close()

    def get(self, key: str) -> CachedReview | None:
        if self._store is None:
            return None
        try:
            row = self._store.execute(
                "SELECT value, size FROM reviews WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._fail("read", exc)
            return None
        if row is None:
            return None
        try:
            raw, size = row
            if not isinstance(raw, bytes):
                raise _Foreign(f"a {type(raw).__name__} value")
            if len(raw) > MAX_VALUE_BYTES or size != len(raw) + len(key):
                raise _Foreign("size does not match")
            entry = CachedReview.model_validate_json(raw)
            if entry.v != VALUE_VERSION:
                raise _Foreign(f"value version {entry.v}")
            if not hmac.compare_digest(entry.seal, self._seal(key, entry)):
                self._unsealed += 1  # one warning per run, not one per row
                if self._unsealed == 1:
                    self._warn("review cache: rows not sealed with this run's key are ignored")
                self._delete(key)
                return None
        except (ValidationError, _Foreign, ValueError) as exc:
            self._warn(f"review cache entry {key[:12]} is not ours ({_short(exc)}); a miss")
            self._delete(key)
            return None
        try:
            self._store.execute("UPDATE reviews SET used = ? WHERE key = ?", (time.time(), key))
        except sqlite3.Error as exc:
            self._fail("write", exc)
        return entry

    def _seal(self, key: str, entry: CachedReview) -> str:
        """HMAC-SHA256 of the key and the value without its seal: a row answers only for the
        key it was written under, and only a holder of the seal key can write one."""
        body = entry.model_dump_json(exclude={"seal"})
        return hmac.new(
            self._seal_key, key.encode("ascii") + b"\0" + body.encode("utf-8"), hashlib.sha256
        ).hexdigest()

    def _delete(self, key: str) -> None:
        if self._store is None:
            return
        try:
            self._store.execute("DELETE FROM reviews WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            self._fail("write", exc)

    def put(
        self, key: str, model: str, findings: list[Finding], *, summary: str | None = None
    ) -> bool:
        if self._store is None:
            return False
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key: {key[:80]!r}")
        try:
            value = CachedReview(
                model=model, findings=findings, summary=summary, stored_at=time.time()
            )
        except ValidationError as exc:
            self._warn(f"review not cached ({_short(exc)})")
            return False
        value.seal = self._seal(key, value)
        text = value.model_dump_json()
        size = len(text.encode("utf-8")) + len(key)
        if size - len(key) > MAX_VALUE_BYTES:
            self._warn(f"review of {key[:12]} not cached: {size:,} bytes is over the row bound")
            return False
        try:
            old = self._store.execute("SELECT size FROM reviews WHERE key = ?", (key,)).fetchone()
            self._store.execute(
                "INSERT OR REPLACE INTO reviews (key, value, size, used) VALUES (?, ?, ?, ?)",
                (key, text, size, time.time()),
            )
        except sqlite3.Error as exc:
            self._fail("write", exc)
            return False
        self._volume += size - (int(old[0]) if old and isinstance(old[0], int) else 0)
        if not self._in_batch:
            self._evict()
        return True

    def _evict(self) -> None:
        """Delete the least recently used rows until the volume is under the bound."""
        if self._store is None or self._volume <= self.size_limit:
            return
        target = math.floor(self.size_limit * _EVICT_TO)
        order = "ORDER BY used, key"
        try:
            rows = self._store.execute(f"SELECT size FROM reviews {order}")  # noqa: S608
            doomed = 0
            volume = self._volume
            for (size,) in rows:
                if volume <= target:
                    break
                doomed += 1
                volume -= int(size)
            rows.close()
            self._store.execute(
                f"DELETE FROM reviews WHERE key IN (SELECT key FROM reviews {order} LIMIT ?)",  # noqa: S608
                (doomed,),
            )
        except sqlite3.Error as exc:
            self._fail("eviction", exc)
            return
        self._volume = volume

    def volume(self) -> int:
        """Bytes of keys and values held (what the size bound counts)."""
        return self._volume

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the reads and writes made inside into one SQLite transaction (one commit for a
        whole review instead of one per file). A transaction that cannot start or commit is a
        warning; the writes are then lost, never a crash."""
        store = self._store
        started = False
        if store is not None and not self._in_batch:
            try:
                store.execute("BEGIN IMMEDIATE")
                started = True
                self._in_batch = True
            except sqlite3.Error as exc:
                self._fail("transaction", exc)
        try:
            yield
        finally:
            if started:
                self._in_batch = False
                self._evict()
                if self._store is not None:
                    try:
                        self._store.execute("COMMIT")
                    except sqlite3.Error as exc:
                        self._fail("commit", exc)

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                if store.in_transaction:
                    store.execute("ROLLBACK")
                store.close()
            except sqlite3.Error as exc:
                self._warn(f"review cache close failed ({_short(exc)})")

    def __enter__(self) -> ReviewCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
