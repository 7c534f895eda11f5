"""Run history kept beside the review cache: `<cache_dir>/history.jsonl`, one JSON line per run.

Interface (binding for callers):
- history_path(cache_dir) -> Path
- record_review(cache_dir, verdict, config) -> ReviewEntry    append one record for a review run
- record_deploy(cache_dir, record, config) -> DeployEntry    append one record for a deploy/audit
  run; `record` is a `DeployRecord` or a dict of its fields (a bad dict raises pydantic's
  ValidationError naming the field)
Recording never fails the run: an unwritable history raises OSError, which the caller reports as a
warning. The optional outputs (node_exporter textfile, run log) are refreshed after each append.

The file lives in the cache directory so actions/cache carries it from run to run. One writer at a
time is assumed (one job owns the cache): each append is a single write(2) on an O_APPEND
descriptor, and trimming to the bound rewrites a temporary file and renames it over the original.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.metrics import MetricsConfig
from bot.metrics import openmetrics, runlog
from bot.metrics.records import ENTRY_ADAPTER, DeployEntry, DeployRecord, ReviewEntry
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
        openmetrics.write_textfile(Path(config.textfile), load_history(path).entries, config)


def append_entry(path: Path, entry: ReviewEntry | DeployEntry, max_records: int) -> None:
    line = entry.model_dump_json().encode("utf-8") + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-write only so the last byte can be checked; every write still goes to the end.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        # A previous writer killed mid-line left no newline: start ours on a fresh line so only
        # the broken line is lost, not ours with it.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)
    _trim(path, max_records)


def _trim(path: Path, max_records: int) -> None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if len(lines) <= max_records:
        return
    kept = lines[-max_records:]
    fd, tmp = tempfile.mkstemp(prefix=".history.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _why(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}" for err in errors[:3]
    ]
    more = f"; {len(errors) - 3} more" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def load_history(path: Path) -> History:
    """Every readable entry, oldest first. Bad lines become `problems` (line number and why)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return History()
    entries: list[ReviewEntry | DeployEntry] = []
    problems: list[str] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entries.append(ENTRY_ADAPTER.validate_json(raw))
        except ValidationError as exc:
            problems.append(f"{path}:{number}: skipped unreadable record ({_why(exc)})")
    entries.sort(key=lambda e: e.ts)
    return History(entries, problems)
