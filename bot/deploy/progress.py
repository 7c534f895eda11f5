"""Progress for people: a rich progress bar for uploads in a terminal, plain lines in CI (logs
keep them), and the final table of what each host received and how long each phase took."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn
from rich.table import Table

from bot.deploy.report import HostReport


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
        self.console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def line(self, target: str, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[{target}] {message}", markup=False)
        else:
            self.console.print(f"[{target}] {message}", markup=False)

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {message}", markup=False)

    def phase_done(self, target: str, phase: str, seconds: float) -> None:
        self.line(target, f"{phase} done in {seconds:.2f}s")

    def upload(self, target: str, total_bytes: int, files: int) -> Callable[[int], None]:
        """Announce an upload; returns the callback that advances it by n bytes."""
        self.line(target, f"uploading {files} files ({_size(total_bytes)} of content)")
        if self.plain:
            return lambda _n: None
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


def summary_table(reports: list[HostReport]) -> Table:
    """One row per host: what went live, what moved, and the time of each phase."""
    table = Table(title="deploy summary", show_lines=False)
    table.add_column("target")
    table.add_column("status")
    table.add_column("live release")
    for col in ("files sent", "bytes sent", "bytes reused", "hashed on host", "total"):
        table.add_column(col, justify="right")
    table.add_column("phases (s)")
    for r in reports:
        phases = " ".join(f"{p} {t:.2f}" for p, t in r.phases.items() if t >= 0.005)
        table.add_row(
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
        )
    return table


def print_summary(reports: list[HostReport], stream: TextIO | None = None) -> None:
    Console(file=stream or sys.stdout, highlight=False, width=160).print(summary_table(reports))
