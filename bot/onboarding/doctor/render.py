"""Doctor output: aligned lines for people, one JSON document for machines."""

from __future__ import annotations

import json

import click

from bot.inert import printable
from bot.onboarding.doctor.model import DoctorReport

_LABEL = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
_COLOR = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}


def render_text(report: DoctorReport, *, color: bool = False) -> str:
    width = max((len(c.title) for c in report.checks), default=10)
    lines = []
    for c in report.checks:
        label = _LABEL[c.status]
        if color:
            label = click.style(label, fg=_COLOR[c.status], bold=c.status == "fail")
        # Details quote config values and server answers: one inert line each (bot/inert.py).
        lines.append(f"{label}  {printable(c.title):<{width}}  {printable(c.detail)}")
        if c.fix and c.status in ("fail", "warn"):
            lines.append(f"      {'':<{width}}  fix: {printable(c.fix)}")
    n = report.counts()
    verdict = "all good" if report.ok and not n["warn"] else ("ok" if report.ok else "problems")
    lines.append(
        f"{verdict}: {n['pass']} passed, {n['warn']} warnings, {n['fail']} failed, "
        f"{n['skip']} skipped in {report.duration_s:.1f}s"
    )
    return "\n".join(lines)


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_json(), indent=2)
