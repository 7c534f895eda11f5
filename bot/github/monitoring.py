"""The run history's alerts and trend charts, for the top of a review's job summary.

Issue 6: alerts show "as `::warning::` in Actions and at the top of the job summary". The
history is read after the review recorded its own run, so the charts include this run. Reading it
never fails the job: an unreadable history becomes a warning line and no block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.config.metrics import MetricsConfig
from bot.github.commands import command
from bot.metrics import render, report


@dataclass(frozen=True)
class Monitoring:
    block: str = ""  # markdown for the top of the step summary; "" when there is nothing
    commands: list[str] = field(default_factory=list)  # workflow commands for the log


def monitoring(cache_dir: Path, metrics: MetricsConfig) -> Monitoring:
    try:
        block = render.summary_block(cache_dir, metrics)
        # The block is markdown only; the alerts themselves are needed for the annotations.
        rep = report.load(cache_dir, metrics.alerts)
    except OSError as exc:
        return Monitoring(commands=[command("warning", f"gatebot: run history not read: {exc}")])
    lines = [command("warning", problem) for problem in rep.problems]
    lines += [
        command("warning", alert.message, {"title": f"gatebot: {alert.id}"}) for alert in rep.alerts
    ]
    return Monitoring(block, lines)
