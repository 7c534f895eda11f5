"""Progress for people: a rich progress bar for uploads in a terminal; in CI and pipes, plain
lines that a log keeps readable (a few progress lines, never a carriage return); and the final
table of what each host received and how long each phase took.

rich is imported only when a terminal gets a bar or a table: `gatebot deploy` in Actions (not a
terminal) never loads it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from bot.deploy.report import HostReport

#: A plain upload reports at these fractions of its bytes (and when it ends).
PLAIN_STEPS = (0.25, 0.5, 0.75)
#: Uploads smaller than this get no intermediate lines.
PLAIN_MIN_BYTES = 8 << 20


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Reporter:
    """Prints progress; `plain` for CI logs and pipes. Constructing it prints nothing."""

    def __init__(self, *, plain: bool, stream: TextIO | None = None) -> None:
        self.plain = plain
        self.stream = stream or sys.stderr
        self._console: Any = None
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    @property
    def console(self) -> Any:
        """The rich Console (terminal mode only; created on first use)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=True)
        return self._console

    def _print(self, text: str) -> None:
        if self.plain:
            self.stream.write(text + "\n")
            self.stream.flush()
        elif self._progress is not None:
            self._progress.console.print(text, markup=False)
        else:
            self.console.print(text, markup=False)

    def line(self, target: str, message: str) -> None:
        self._print(f"[{target}] {message}")

    def lines(self, target: str, text: str) -> None:
        """Several lines of output (a hook's), each prefixed with the target."""
        for one in text.splitlines() or [""]:
            self.line(target, one)

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")

    def phase_done(self, target: str, phase: str, seconds: float) -> None:
        self.line(target, f"{phase} done in {seconds:.2f}s")

    def upload(self, target: str, total_bytes: int, files: int) -> Callable[[int], None]:
        """Announce an upload; returns the callback that advances it by n bytes."""
        self.line(target, f"uploading {files} files ({_size(total_bytes)} of content)")
        if self.plain:
            return self._plain_upload(target, total_bytes)
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        task = self._progress.add_task(target, total=max(total_bytes, 1))
        self._tasks[target] = task
        progress = self._progress
        return lambda n: progress.advance(task, n)

    def _plain_upload(self, target: str, total: int) -> Callable[[int], None]:
        """A line at each quarter of a big upload: readable in a log, never redrawn."""
        if total < PLAIN_MIN_BYTES:
            return lambda _n: None
        start = time.monotonic()
        done = 0
        steps = list(PLAIN_STEPS)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            while steps and done >= steps[0] * total:
                steps.pop(0)
                rate = done / max(time.monotonic() - start, 1e-6)
                self.line(
                    target,
                    f"uploaded {_size(done)} of {_size(total)} ({100 * done // total}%, "
                    f"{_size(int(rate))}/s)",
                )

        return advance

    def upload_done(self, target: str) -> None:
        task = self._tasks.pop(target, None)
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
            if not self._tasks:
                self._progress.stop()
                self._progress = None

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def make_reporter(env: Mapping[str, str], stream: TextIO | None = None) -> Reporter:
    out = stream or sys.stderr
    ci = env.get("CI", "").lower() in ("1", "true", "yes") or bool(env.get("GITHUB_ACTIONS"))
    return Reporter(plain=ci or not out.isatty(), stream=out)


COLUMNS = (
    "target",
    "status",
    "live release",
    "files sent",
    "bytes sent",
    "bytes reused",
    "hashed on host",
    "total",
    "phases (s)",
)
_RIGHT = {"files sent", "bytes sent", "bytes reused", "hashed on host", "total"}


def summary_rows(reports: list[HostReport]) -> list[list[str]]:
    """One row per host: what went live, what moved, and the time of each phase."""
    rows = []
    for r in reports:
        phases = " ".join(f"{p} {t:.2f}" for p, t in r.phases.items() if t >= 0.005)
        rows.append(
            [
                r.target,
                r.status,
                r.live or r.release or "-",
                str(r.files_sent),
                _size(r.bytes_sent),
                _size(r.bytes_reused),
                # files read to check the release (the rest had ids known for their inode)
                f"{r.files_hashed}/{r.files_hashed + r.files_hash_known}",
                f"{r.duration_s:.2f}s",
                phases or "-",
            ]
        )
    return rows


def summary_table(reports: list[HostReport]) -> Table:
    """The summary as a rich table (for a terminal)."""
    from rich.table import Table

    table = Table(title="deploy summary", show_lines=False)
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in _RIGHT else "left")
    for row in summary_rows(reports):
        table.add_row(*row)
    return table


def summary_text(reports: list[HostReport]) -> str:
    """The summary as plain aligned text (for logs): no box drawing, no control codes."""
    rows = [list(COLUMNS), *summary_rows(reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def fmt(row: list[str]) -> str:
        cells = [
            cell.rjust(w) if col in _RIGHT else cell.ljust(w)
            for cell, w, col in zip(row, widths, COLUMNS, strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join(["deploy summary", fmt(rows[0]), rule, *(fmt(r) for r in rows[1:])])


def print_summary(reports: list[HostReport], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    if out.isatty():
        from rich.console import Console

        Console(file=out, highlight=False, width=160).print(summary_table(reports))
    else:
        out.write(summary_text(reports) + "\n")
        out.flush()
