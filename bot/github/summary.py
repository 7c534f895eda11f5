"""Markdown for people: the job summary and the check run's summary, rendered from the Verdict.

The layout lives in templates/summary.md; this module only computes the values. Both outlets
show the same thing, so a fork PR's job summary says as much as a posted check would.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from string import Template

from bot.github.annotations import all_findings, severity_rank
from bot.review.models import FileResult, Finding, Verdict
from bot.review.summary import code, escape_md, not_reviewed_section, savings_text
from bot.review.verdict import not_reviewed_headline

MAX_FINDING_ROWS = 200
_ICONS = {"pass": "✅", "fail": "❌", "neutral": "⚪"}
_STATUS_LABEL = {"reviewed": "reviewed", "cached": "from cache", "skipped": "skipped"}


def _template() -> Template:
    text = resources.files("bot.github").joinpath("templates/summary.md").read_text("utf-8")
    return Template(text)


def blocking(verdict: Verdict) -> list[Finding]:
    threshold = severity_rank(verdict.blocking_severity)
    return [f for f in all_findings(verdict) if severity_rank(f.severity) >= threshold]


def headline(verdict: Verdict, markdown: bool = True) -> str:
    """What decided the verdict, most pressing first: blocking findings, files nobody
    reviewed (with the cause: the PR's content or the provider), protected paths."""
    n_block = len(blocking(verdict))
    n_all = len(all_findings(verdict))
    parts: list[str] = []
    if n_block:
        parts.append(f"{n_block} blocking finding{'s' if n_block != 1 else ''} ({n_all} in total)")
    not_reviewed = not_reviewed_headline(verdict.files)
    if not_reviewed:
        parts.append(not_reviewed)
    if verdict.needs_human:
        n = len(verdict.needs_human)
        parts.append(f"{n} protected file{'s' if n != 1 else ''} need a maintainer's approval")
    if parts:
        return "; ".join(parts)
    if verdict.verdict != "pass":
        why = verdict.degraded_reason or "see the notes below"
        return escape_md(why) if markdown else why
    return f"no blocking findings ({n_all} finding{'s' if n_all != 1 else ''} below the threshold)"


def _location(f: Finding) -> str:
    if f.line is None:
        return code(f.path)
    span = f"{f.line}" if f.end_line in (None, f.line) else f"{f.line}-{f.end_line}"
    return code(f"{f.path}:{span}")


def findings_table(findings: Sequence[Finding], limit: int = MAX_FINDING_ROWS) -> str:
    if not findings:
        return "None."
    ordered = sorted(findings, key=lambda f: (-severity_rank(f.severity), f.path, f.line or 0))
    rows = [
        "| Severity | Location | Category | Message | Source |",
        "|---|---|---|---|---|",
    ]
    for f in ordered[:limit]:
        rows.append(
            f"| {f.severity} | {_location(f)} | {escape_md(f.category)} | {escape_md(f.message)} "
            f"| {f.source} |"
        )
    if len(ordered) > limit:
        rows.append(f"\n{len(ordered) - limit} more findings are in verdict.json.")
    return "\n".join(rows)


def _file_note(fr: FileResult) -> str:
    notes = []
    if fr.reason:
        notes.append(escape_md(fr.reason))
    if fr.needs_human:
        notes.append("protected: needs a human review")
    if fr.not_reviewed is not None:
        notes.append(f"not reviewed ({fr.not_reviewed.cause}): {escape_md(fr.not_reviewed.reason)}")
    if fr.model:
        notes.append(f"model {escape_md(fr.model)}")
    return "; ".join(notes)


def files_table(files: Sequence[FileResult]) -> str:
    if not files:
        return "No changed files."
    rows = ["| File | Status | Findings | Notes |", "|---|---|---:|---|"]
    for fr in files:
        name = code(fr.path) if not fr.old_path else f"{code(fr.old_path)} → {code(fr.path)}"
        status = _STATUS_LABEL[fr.status]
        rows.append(f"| {name} | {status} | {len(fr.findings)} | {_file_note(fr)} |")
    return "\n".join(rows)


def render_summary(verdict: Verdict, notes: Sequence[str] = ()) -> str:
    """`notes` are gatebot's own markdown; anything from the repo or a model is escaped here."""
    m = verdict.metrics
    all_notes = [" ".join(n.split()) for n in notes]
    if verdict.degraded:
        why = escape_md(verdict.degraded_reason or "the model provider was unavailable")
        all_notes.insert(0, f"Degraded: {why}.")
    if verdict.needs_human:
        listed = ", ".join(code(p) for p in verdict.needs_human)
        all_notes.append(f"Protected paths changed, a human must approve: {listed}.")
    notes_md = "".join(f"\n> {n}\n" for n in all_notes)
    uncovered = ""
    if verdict.uncovered:
        uncovered = "\n" + not_reviewed_section(verdict.files)
    return _template().substitute(
        icon=_ICONS[verdict.verdict],
        verdict=verdict.verdict,
        headline=headline(verdict),
        provider=escape_md(verdict.provider),
        blocking_severity=verdict.blocking_severity,
        base_short=verdict.base_sha[:12],
        head_short=verdict.head_sha[:12],
        notes=notes_md,
        findings=findings_table(all_findings(verdict)),
        files=files_table(verdict.files),
        uncovered=uncovered,
        api_calls=m.api_calls,
        batches=m.batches,
        files_per_call=f"{m.files_per_call:.1f}",
        input_tokens=f"{m.input_tokens:,}",
        output_tokens=f"{m.output_tokens:,}",
        cached_tokens=f"{m.cached_tokens:,}",
        cost_usd=f"{m.cost_usd:.4f}",
        baseline_api_calls=m.baseline_api_calls,
        baseline_cost_usd=f"{m.baseline_cost_usd:.4f}",
        saved=savings_text(m),
        cache_hit_rate=f"{m.cache_hit_rate:.0%}",
        files_total=m.files_total,
        files_reviewed=m.files_reviewed,
        files_cached=m.files_cached,
        files_skipped=m.files_skipped,
        files_not_reviewed=m.files_not_reviewed,
        duration_s=f"{m.duration_s:.1f}",
    )


def check_title(verdict: Verdict) -> str:
    # A check run title is plain text: no markdown escaping, one line.
    title = f"{verdict.verdict}: {headline(verdict, markdown=False)}"
    if verdict.approval is not None and verdict.conclusion == "success":
        title = f"approved by @{verdict.approval.approver}: {title}"
    return " ".join(title.split())[:255]


def report_markdown(verdict: Verdict, summary_md: str, notes: Sequence[str] = ()) -> str:
    """The review's summary.md when given (else our rendering), with gatebot's notes at the end.

    `notes` are gatebot's own markdown (links it built, reasons it wrote), not untrusted text.
    """
    if not summary_md.strip():
        return render_summary(verdict, notes)
    if not notes:
        return summary_md
    body = "".join(f"\n> {' '.join(n.split())}\n" for n in notes)
    return f"{summary_md.rstrip()}\n\n### Notes\n{body}"
