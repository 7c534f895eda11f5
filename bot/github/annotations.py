"""Findings → line annotations, shared by every outlet (check run, workflow commands, SARIF).

Only findings on a changed line of the diff are annotated (GitHub shows annotations on the
PR's "Files changed" tab; elsewhere they are noise). The rest stay in the summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bot.config.review import SEVERITY_ORDER
from bot.review.models import Finding, Verdict

Level = Literal["failure", "warning", "notice"]

_LEVEL_RANK: dict[str, int] = {"failure": 0, "warning": 1, "notice": 2}


@dataclass(frozen=True)
class Annotation:
    path: str
    start_line: int
    end_line: int
    level: Level
    title: str
    message: str
    severity: str


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


def level_for(severity: str, blocking_severity: str) -> Level:
    """A finding that blocks the merge is a failure; medium and up a warning; below, a notice.

    Relative to the blocking threshold, so a green check never carries a red annotation.
    """
    rank = severity_rank(severity)
    if rank >= severity_rank(blocking_severity):
        return "failure"
    if rank >= severity_rank("medium"):
        return "warning"
    return "notice"


def annotatable(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.in_diff and f.line is not None]


def all_findings(verdict: Verdict) -> list[Finding]:
    return [f for file in verdict.files for f in file.findings]


def annotations_for(verdict: Verdict) -> list[Annotation]:
    """Annotations for the verdict's annotatable findings, most severe first, stable otherwise."""
    out: list[Annotation] = []
    for f in annotatable(all_findings(verdict)):
        assert f.line is not None  # annotatable() keeps only findings with a line
        end = f.end_line if f.end_line is not None and f.end_line >= f.line else f.line
        out.append(
            Annotation(
                path=f.path,
                start_line=f.line,
                end_line=end,
                level=level_for(f.severity, verdict.blocking_severity),
                title=f"{f.severity}: {f.category}",
                message=f.message,
                severity=f.severity,
            )
        )
    out.sort(key=lambda a: (_LEVEL_RANK[a.level], -severity_rank(a.severity)))
    return out
