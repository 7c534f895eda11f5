"""The review cache: model findings per file, keyed by content (bot.review.normalize.cache_key).

diskcache does the storage, the size bound and the eviction. What we add: values are our own
JSON validated with pydantic on read, pickled values are refused (a cache restored from CI
storage is not trusted to run code), and every storage problem is a miss plus a warning,
never a crash: the cache only ever saves money.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import diskcache
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.review.models import Finding

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".gatebot-cache")
CACHE_ENV = "GATEBOT_CACHE_DIR"
VALUE_VERSION = 1

# Errors storage can raise; all of them degrade to "no cache".
_STORAGE_ERRORS = (sqlite3.Error, OSError, diskcache.Timeout)


class _ForeignEntry(ValueError):
    pass


class _NoPickleDisk(diskcache.Disk):
    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise _ForeignEntry("pickled value refused")
        return super().fetch(mode, filename, value, read)


class CachedReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: int = VALUE_VERSION
    model: str
    findings: list[Finding]
    stored_at: float = 0.0


def resolve_cache_dir(option: Path | None, env: Mapping[str, str]) -> Path:
    if option is not None:
        return option
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    return DEFAULT_CACHE_DIR


class ReviewCache:
    """Open with `ReviewCache.open(...)`; the constructor does no I/O."""

    def __init__(self, store: diskcache.Cache | None, directory: Path) -> None:
        self._store = store
        self.directory = directory
        self.warnings: list[str] = []

    @property
    def enabled(self) -> bool:
        return self._store is not None

    @classmethod
    def open(cls, directory: Path, size_limit_bytes: int) -> ReviewCache:
        try:
            return cls(cls._open_store(directory, size_limit_bytes), directory)
        except _STORAGE_ERRORS as first:
            # A corrupt database (e.g. a truncated cache.db restored by actions/cache): set it
            # aside and start empty, so the next run saves a healthy cache again.
            db = directory / diskcache.core.DBNAME
            warning = f"review cache {directory} unusable ({first}); starting an empty cache"
            try:
                if db.exists():
                    db.replace(db.with_name(db.name + ".corrupt"))
                    for extra in ("-wal", "-shm"):
                        db.with_name(db.name + extra).unlink(missing_ok=True)
                cache = cls(cls._open_store(directory, size_limit_bytes), directory)
            except _STORAGE_ERRORS as second:
                warning = f"review cache {directory} unusable ({second}); running without a cache"
                cache = cls(None, directory)
            log.warning(warning)
            cache.warnings.append(warning)
            return cache

    @staticmethod
    def _open_store(directory: Path, size_limit_bytes: int) -> diskcache.Cache:
        store = diskcache.Cache(
            str(directory),
            size_limit=size_limit_bytes,
            eviction_policy="least-recently-used",
            disk=_NoPickleDisk,
            timeout=10,
        )
        # Touch the table now so corruption shows up here and not in the middle of a review.
        len(store)
        return store

    def _warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def get(self, key: str) -> CachedReview | None:
        if self._store is None:
            return None
        try:
            raw = self._store.get(key)
        except (_ForeignEntry, *_STORAGE_ERRORS) as exc:
            self._warn(f"review cache entry {key[:12]} unreadable ({exc}); treated as a miss")
            return None
        if raw is None:
            return None
        try:
            if not isinstance(raw, (str, bytes)):
                raise _ForeignEntry(f"unexpected {type(raw).__name__} value")
            value = CachedReview.model_validate_json(raw)
            if value.v != VALUE_VERSION:
                raise _ForeignEntry(f"value version {value.v}")
        except (ValidationError, _ForeignEntry) as exc:
            self._warn(f"review cache entry {key[:12]} is not ours ({_short(exc)}); a miss")
            return None
        return value

    def put(self, key: str, model: str, findings: list[Finding]) -> bool:
        if self._store is None:
            return False
        value = CachedReview(model=model, findings=findings, stored_at=time.time())
        try:
            self._store.set(key, value.model_dump_json())
        except _STORAGE_ERRORS as exc:
            self._warn(f"review cache write failed ({exc}); the result is not cached")
            return False
        return True

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one SQLite transaction (one commit for a whole
        review instead of one per file). A transaction that cannot start or commit is a
        warning; the writes are then made one by one or lost, never a crash."""
        tx: AbstractContextManager[object] | None = None
        if self._store is not None:
            try:
                tx = self._store.transact()
                tx.__enter__()
            except _STORAGE_ERRORS as exc:
                self._warn(f"review cache transaction not started ({exc}); writing one by one")
                tx = None
        try:
            yield
        finally:
            if tx is not None:
                try:
                    tx.__exit__(None, None, None)
                except _STORAGE_ERRORS as exc:
                    self._warn(f"review cache write failed ({exc}); this run is not cached")

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except _STORAGE_ERRORS as exc:
                self._warn(f"review cache close failed ({exc})")
            self._store = None

    def __enter__(self) -> ReviewCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
