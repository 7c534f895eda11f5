"""Run history kept beside the review cache: `<cache_dir>/history.jsonl`, one JSON line per run.

Interface (binding for callers):
- history_path(cache_dir) -> Path
- record_review(cache_dir, verdict, config) -> ReviewEntry    append one record for a review run
- record_deploy(cache_dir, record, config) -> DeployEntry    append one record for a deploy/audit
  run; `record` is a `DeployRecord` or a dict of its fields (a bad dict raises pydantic's
  ValidationError naming the field)
Recording never fails the run: an unwritable history raises OSError, which the caller reports as a
warning. The optional outputs (node_exporter textfile, run log) are refreshed after each append.

The file lives in the cache directory so actions/cache carries it from run to run, so it is
untrusted restored state: every read and write goes through bot/review/restored.py (no link is
followed, only plain files are read, reads are bounded). One writer at a time is assumed (one job
owns the cache): each append is a single write(2) on an O_APPEND descriptor, and trimming to the
bound rewrites a temporary file and renames it over the original.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.metrics import MetricsConfig
from bot.metrics import runlog
from bot.metrics.records import ENTRY_ADAPTER, DeployEntry, DeployRecord, ReviewEntry
from bot.review import restored
from bot.review.models import Verdict

__all__ = [
    "DeployRecord",
    "History",
    "history_path",
    "load_history",
    "record_deploy",
    "record_review",
]

HISTORY_FILE = "history.jsonl"
# Far above what history_max_records lines take; a larger file is restored garbage.
MAX_HISTORY_BYTES = 64 * 2**20

_MAX_PROBLEMS = 20  # unreadable lines named one by one; the rest are counted

log = logging.getLogger(__name__)


def history_path(cache_dir: Path) -> Path:
    return cache_dir / HISTORY_FILE


@dataclass(frozen=True)
class History:
    entries: list[ReviewEntry | DeployEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _stamp(now: datetime | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    when = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    source = os.environ if env is None else env
    return {"ts": when.astimezone(timezone.utc), "run_id": source.get("GITHUB_RUN_ID") or None}


def record_review(
    cache_dir: Path,
    verdict: Verdict,
    config: MetricsConfig,
    *,
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
) -> ReviewEntry:
    entry = ReviewEntry(
        **_stamp(now, env),
        verdict=verdict.verdict,
        provider=verdict.provider,
        degraded=verdict.degraded,
        degraded_reason=verdict.degraded_reason,
        head_sha=verdict.head_sha,
        uncovered=len(verdict.uncovered),
        metrics=verdict.metrics,
    )
    _record(cache_dir, entry, config)
    if config.run_log:
        runlog.append_line(Path(config.run_log), verdict.metrics, entry.ts)
    return entry


def record_deploy(
    cache_dir: Path,
    record: DeployRecord | Mapping[str, Any],
    config: MetricsConfig,
    *,
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
) -> DeployEntry:
    fields = record.model_dump() if isinstance(record, DeployRecord) else dict(record)
    checked = DeployRecord.model_validate(fields)  # unknown or bad fields: an error naming them
    entry = DeployEntry(**_stamp(now, env), **checked.model_dump())
    _record(cache_dir, entry, config)
    return entry


def _record(cache_dir: Path, entry: ReviewEntry | DeployEntry, config: MetricsConfig) -> None:
    path = history_path(cache_dir)
    append_entry(path, entry, config.history_max_records)
    if config.textfile:
        # Imported here: prometheus-client, which only a textfile export needs.
        from bot.metrics import openmetrics

        openmetrics.write_textfile(Path(config.textfile), load_history(path).entries, config)


def append_entry(path: Path, entry: ReviewEntry | DeployEntry, max_records: int) -> None:
    line = entry.model_dump_json().encode("utf-8") + b"\n"
    directory, name = path.parent, path.name
    try:
        size = restored.append_entry(directory, name, line)
    except restored.StateError as exc:
        problem = restored.directory_problem(directory)
        if problem:
            raise OSError(problem) from None
        # Restored state that is not a plain file (a link, a FIFO, a hard link): drop it.
        log.warning("run history dropped, starting a new one: %s", exc)
        restored.clear_entry(directory, name)
        size = restored.append_entry(directory, name, line)
    if size + len(line) > MAX_HISTORY_BYTES:
        log.warning("run history %s is over %d bytes: trimmed", path, MAX_HISTORY_BYTES)
    _trim(path, max_records)


def _trim(path: Path, max_records: int) -> None:
    try:
        data = restored.read_entry(path.parent, path.name, MAX_HISTORY_BYTES)
    except restored.StateError:
        # Larger than any history we write (max_records lines): restored garbage. Keep only
        # what this run appended: the last line.
        data = _tail(path)
        lines = data.splitlines(keepends=True)
        restored.write_entry(path.parent, path.name, b"".join(lines[-1:]))
        return
    lines = (data or b"").splitlines(keepends=True)
    if len(lines) <= max_records:
        return
    restored.write_entry(path.parent, path.name, b"".join(lines[-max_records:]))


def _tail(path: Path, size: int = 64 * 1024) -> bytes:
    """The last `size` bytes of the history (already checked to be a plain file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        end = os.fstat(fd).st_size
        return os.pread(fd, size, max(0, end - size))
    finally:
        os.close(fd)


def _why(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}" for err in errors[:3]
    ]
    more = f"; {len(errors) - 3} more" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def load_history(path: Path) -> History:
    """Every readable entry, oldest first. Bad lines become `problems` (line number and why).

    The file is restored state (bot/review/restored.py): a link, a FIFO, a directory or a file
    over MAX_HISTORY_BYTES raises OSError naming it, as an unreadable file does; the callers
    report it as a warning."""
    try:
        data = restored.read_entry(path.parent, path.name, MAX_HISTORY_BYTES)
    except restored.StateError as exc:
        raise OSError(str(exc)) from None
    if data is None:
        return History()
    entries: list[ReviewEntry | DeployEntry] = []
    problems: list[str] = []
    bad = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entries.append(ENTRY_ADAPTER.validate_json(raw))
        except ValidationError as exc:
            if len(problems) < _MAX_PROBLEMS:
                problems.append(f"{path}:{number}: skipped unreadable record ({_why(exc)})")
            bad += 1
    if bad > len(problems):
        problems.append(f"{path}: {bad - len(problems)} more unreadable record(s) skipped")
    entries.sort(key=lambda e: e.ts)
    return History(entries, problems)
