"""Show a monitoring report: a rich table, JSON, or markdown with Mermaid trend charts.

`summary_block(cache_dir, config)` is the piece the Action puts at the top of the job summary:
firing alerts first, then the trend charts; an empty string when there is no history yet.
GitHub renders ```mermaid blocks in markdown, including job summaries.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.config.metrics import MetricsConfig
from bot.config.model import GatebotConfig
from bot.metrics import report as report_mod
from bot.metrics.alerts import Alert
from bot.metrics.figures import AnyEntry, Figures, run_figures
from bot.metrics.records import ReviewEntry
from bot.metrics.report import Report

CHART_RUNS = 20
RECENT_RUNS = 10


# --- value formatting ---------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None, unit: str, digits: int = 2) -> str:
    return " / ".join("–" if v is None else f"{v:.{digits}f} {unit}" for v in (a, b))


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    # Small reviews cost fractions of a cent: keep their digits visible.
    return f"${value:.4f}" if value == 0 or abs(value) >= 0.01 else f"${value:.6f}"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _when(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


# --- the figures as (label, value) rows, shared by the table and markdown views -----------------


def review_rows(fig: Figures) -> list[tuple[str, str]]:
    r = fig.review
    return [
        ("review runs", str(r.runs)),
        ("model calls (naive)", f"{r.api_calls} ({r.baseline_api_calls})"),
        ("call reduction", _pct(r.call_reduction)),
        ("tokens in / out / cached", f"{r.input_tokens} / {r.output_tokens} / {r.cached_tokens}"),
        ("cost (naive)", f"{_usd(r.cost_usd)} ({_usd(r.baseline_cost_usd)})"),
        ("saved", _usd(r.saved_usd)),
        ("cost reduction", _pct(r.cost_reduction)),
        ("cache hit rate", _pct(r.cache_hit_rate)),
        ("files per call", _num(r.files_per_call)),
        ("degraded runs", str(r.degraded_runs)),
        ("gate duration p50 / p95", _pair(r.duration_p50_s, r.duration_p95_s, "s")),
    ]


def deploy_rows(fig: Figures) -> list[tuple[str, str]]:
    d = fig.deploy
    return [
        ("deploys / rollbacks / audits", f"{d.deploys} / {d.rollbacks} / {d.audits}"),
        ("failed deploys / audits", f"{d.failed_deploys} / {d.failed_audits}"),
        (
            "deploy duration p50 / p95",
            _pair(d.deploy_duration_p50_s, d.deploy_duration_p95_s, "s"),
        ),
        ("sent", f"{_bytes(d.bytes_sent)} in {d.files_sent} files"),
        (
            "audit duration p50 / p95",
            _pair(d.audit_duration_p50_s, d.audit_duration_p95_s, "s"),
        ),
        (
            "GTW round trip p50 (latest) / max",
            _pair(d.gtw_rtt_p50_ms, d.gtw_rtt_max_ms, "ms", 1),
        ),
        ("runs ended in an error", f"{fig.errors} of {fig.runs} ({_pct(fig.error_rate)})"),
    ]


def _run_line(entry: AnyEntry) -> list[str]:
    f = run_figures(entry)
    if isinstance(entry, ReviewEntry):
        detail = (
            f"{f['api_calls']} calls vs {f['baseline_api_calls']}, {_usd(f['cost_usd'])} vs "
            f"{_usd(f['baseline_cost_usd'])}, hit {_pct(f['cache_hit_rate'])}"
            + (", degraded" if entry.degraded else "")
        )
    else:
        detail = f"{f['target']} {f['release'] or ''}".strip()
        if f["bytes_sent"]:
            detail += f", sent {_bytes(f['bytes_sent'])}"
        if f["gtw_rtt_p50_ms"] is not None:
            detail += f", GTW p50 {f['gtw_rtt_p50_ms']:.1f} ms"
        if f["error"]:
            detail += f", error: {f['error']}"
    return [_when(entry.ts), entry.kind, str(f["outcome"]), f"{f['duration_s']:.1f} s", detail]


# --- table (rich) -------------------------------------------------------------------------------


def _window_text(rep: Report) -> str:
    since = f" since {_when(rep.since)}Z" if rep.since else ""
    return f"newest {rep.window_runs} runs of each kind{since}, from {rep.path}"


def render_table(rep: Report, width: int = 110) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    console.print(f"gatebot metrics: {_window_text(rep)}", markup=False)
    for problem in rep.problems:
        console.print(f"warning: {problem}", markup=False)
    if not rep.entries:
        console.print("no runs recorded in this window")
    for title, rows in (
        ("Reviews", review_rows(rep.figures)),
        ("Deploys", deploy_rows(rep.figures)),
    ):
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for label, value in rows:
            table.add_row(Text(label), Text(value))
        console.print(table)
    if rep.entries:
        recent = Table(title=f"Recent runs (newest {RECENT_RUNS})", title_justify="left")
        for column in ("when (UTC)", "kind", "outcome", "duration", "detail"):
            recent.add_column(column)
        for entry in rep.entries[-RECENT_RUNS:]:
            # Text(): error messages such as "[Errno 111] …" are not rich markup.
            recent.add_row(*(Text(cell) for cell in _run_line(entry)))
        console.print(recent)
    console.print(_alerts_text(rep.alerts), markup=False)
    return out.getvalue()


def _alerts_text(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return "alerts: none firing"
    return "alerts firing:\n" + "\n".join(f"  [{a.id}] {a.message}" for a in alerts)


# --- json ---------------------------------------------------------------------------------------


def render_json(rep: Report) -> str:
    data: dict[str, Any] = {
        "history": str(rep.path),
        "records": rep.total_records,
        "since": rep.since.isoformat() if rep.since else None,
        "window_runs": rep.window_runs,
        "problems": rep.problems,
        "summary": rep.figures.as_dict(),
        "alerts": [a.as_dict() for a in rep.alerts],
        "runs": [run_figures(e) for e in rep.entries],
    }
    return json.dumps(data, indent=2)


# --- markdown and Mermaid -----------------------------------------------------------------------


def _mermaid_number(value: float) -> str:
    # Plain decimal: the xychart grammar reads no exponent notation.
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _axis_top(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return math.ceil(top / magnitude) * magnitude


def _labels(entries: Sequence[AnyEntry]) -> list[str]:
    labels: list[str] = []
    for entry in entries:
        base = entry.ts.astimezone(timezone.utc).strftime("%m-%d %H:%M")
        label, n = base, 1
        while label in labels:  # equal categories would collapse into one bar
            n += 1
            label = f"{base} ({n})"
        labels.append(label)
    return labels


def _series(name: str, values: Sequence[float]) -> str:
    return f"    {name} [{', '.join(_mermaid_number(v) for v in values)}]"


def mermaid_charts(entries: Sequence[AnyEntry], limit: int = CHART_RUNS) -> str:
    """Two xychart-beta blocks over the newest `limit` reviews; empty when there are none."""
    reviews = [e for e in entries if isinstance(e, ReviewEntry)][-limit:]
    if not reviews:
        return ""
    axis = "    x-axis [" + ", ".join(f'"{label}"' for label in _labels(reviews)) + "]"
    baseline = [e.metrics.baseline_cost_usd for e in reviews]
    cost = [e.metrics.cost_usd for e in reviews]
    saved: list[float] = []
    hit: list[float] = []
    for e in reviews:
        f = run_figures(e)
        saved.append(round(100 * (f["cost_reduction"] or 0.0), 1))
        hit.append(round(100 * (f["cache_hit_rate"] or 0.0), 1))
    cost_chart = [
        "```mermaid",
        "xychart-beta",
        '    title "Cost per review in USD (bars = naive baseline, line = gatebot)"',
        axis,
        f'    y-axis "USD" 0 --> {_mermaid_number(_axis_top(baseline + cost))}',
        _series("bar", baseline),
        _series("line", cost),
        "```",
    ]
    rate_chart = [
        "```mermaid",
        "xychart-beta",
        '    title "Per review in percent (bars = cost saved, line = cache hit rate)"',
        axis,
        '    y-axis "percent" 0 --> 100',
        _series("bar", saved),
        _series("line", hit),
        "```",
    ]
    return "\n".join(cost_chart) + "\n\n" + "\n".join(rate_chart) + "\n"


def alerts_markdown(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return ""
    lines = ["> [!WARNING]", "> **gatebot alerts**", ">"]
    lines += [f"> - `{a.id}`: {a.message}" for a in alerts]
    return "\n".join(lines) + "\n"


def _md_table(rows: Sequence[tuple[str, str]]) -> str:
    lines = ["| figure | value |", "| --- | ---: |"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines) + "\n"


def render_markdown(rep: Report) -> str:
    parts = ["## gatebot metrics\n", f"_{_window_text(rep)}_\n"]
    parts.append(alerts_markdown(rep.alerts) or "No alerts firing.\n")
    if rep.problems:
        parts.append("\n".join(f"- warning: {p}" for p in rep.problems) + "\n")
    parts += ["### Reviews\n", _md_table(review_rows(rep.figures))]
    parts += ["### Deploys and audits\n", _md_table(deploy_rows(rep.figures))]
    charts = mermaid_charts(rep.entries)
    if charts:
        parts += ["### Trend\n", charts]
    if rep.entries:
        rows = [
            "| when (UTC) | kind | outcome | duration | detail |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for entry in rep.entries[-RECENT_RUNS:]:
            cells = [c.replace("|", "\\|") for c in _run_line(entry)]
            rows.append("| " + " | ".join(cells) + " |")
        parts += [f"### Recent runs (newest {RECENT_RUNS})\n", "\n".join(rows) + "\n"]
    return "\n".join(parts)


# --- job summary ----------------------------------------------------------------------------------


def summary_block(cache_dir: Path, config: GatebotConfig | MetricsConfig) -> str:
    """Alerts + trend charts for the top of the job summary; "" when there is nothing to show.

    Reads `<cache_dir>/history.jsonl` (unreadable lines are skipped). Never raises for a missing
    history; an unreadable file raises OSError like any read.
    """
    metrics = config.metrics if isinstance(config, GatebotConfig) else config
    rep = report_mod.load(cache_dir, metrics.alerts)
    parts = [p for p in (alerts_markdown(rep.alerts), mermaid_charts(rep.entries)) if p]
    return "\n".join(parts)
