"""One monitoring report: the selected window, its figures, its alerts. Pure apart from `load`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.config.metrics import AlertsConfig
from bot.metrics.alerts import Alert, evaluate
from bot.metrics.figures import AnyEntry, Figures, figures, select
from bot.metrics.history import History, history_path, load_history


@dataclass(frozen=True)
class Report:
    path: Path
    since: datetime | None
    window_runs: int
    entries: list[AnyEntry]
    figures: Figures
    alerts: list[Alert]
    problems: list[str]
    total_records: int


def build(history: History, path: Path, cfg: AlertsConfig, since: datetime | None = None) -> Report:
    selected = select(history.entries, since=since, per_kind=cfg.window_runs)
    return Report(
        path=path,
        since=since,
        window_runs=cfg.window_runs,
        entries=selected,
        figures=figures(selected),
        alerts=evaluate(selected, cfg),
        problems=list(history.problems),
        total_records=len(history.entries),
    )


def load(cache_dir: Path, cfg: AlertsConfig, since: datetime | None = None) -> Report:
    path = history_path(cache_dir)
    return build(load_history(path), path, cfg, since)
