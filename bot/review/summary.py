"""summary.md: the human-readable review (job summary, check run text).

Everything that came from a model or from the repository (messages, paths) is untrusted: it is
escaped so it cannot inject markdown, HTML, links or mentions into the page.
"""

from __future__ import annotations

import re
from importlib import resources
from string import Template

from bot.inert import printable
from bot.redact import redact
from bot.review.models import FileResult, Finding, Metrics, Verdict
from bot.review.verdict import CAUSE_TEXT, not_reviewed_by_cause, severity_rank

MAX_FILE_ROWS = 200
MAX_FINDINGS = 200
MAX_MESSAGE = 600

_ICONS = {"pass": "✅", "fail": "❌", "neutral": "⚠️"}
# Inline markup characters. Block markup (#, -, +, 1.) only acts at the start of a line, and
# untrusted text never starts a line here; "(" only forms a link after "]", which is escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def escape_md(text: str, limit: int = MAX_MESSAGE) -> str:
    """Plain text safe to embed in markdown (also inside a table cell)."""
    text = " ".join(text.split())  # no newlines: they would end a table row or a list item
    # Controls, bidi/zero-width format characters and lone surrogates (a non-UTF-8 file name)
    # spelled out, URL credentials hidden: a name is shown as data (bot/inert.py).
    text = printable(redact(text))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # No @mentions or #references from untrusted text.
    return text.replace("@", "&#64;")


def code(text: str) -> str:
    """An inline code span that survives backticks and pipes (inside tables) in `text`."""
    text = printable(redact(" ".join(text.split())))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    body = text.replace("|", "\\|")
    return f"{fence}{pad}{body}{pad}{fence}"


def _money(x: float) -> str:
    return f"${x:.4f}"


def savings_text(m: Metrics) -> str:
    """What the gate saved against the naive review, told straight: a gate that cost more
    reads as a cost increase, a cost nobody can price as unknown."""
    if not m.cost_known:
        return f"unknown (no price for {', '.join(m.unpriced_models) or 'a model used'})"
    saved = m.baseline_cost_usd - m.cost_usd
    if m.baseline_cost_usd <= 0:
        return f"{_money(saved)} (nothing to compare)"
    rate = saved / m.baseline_cost_usd
    if saved >= 0:
        return f"{_money(saved)} ({rate:.0%} lower)"
    return f"none: a cost increase of {_money(-saved)} (+{-rate:.0%} over the naive review)"


def _models_line(m: Metrics) -> str:
    used = ", ".join(f"{escape_md(t)} {code(mod)}" for t, mod in m.models.items())
    moved = "; ".join(
        f"{code(f.from_model)} → {code(f.to_model) if f.to_model else 'none'} "
        f"({f.files} file(s), {escape_md(f.tier)})"
        for f in m.model_fallbacks
    )
    return f"Models: {used or 'none'}." + (f" Fallbacks: {moved}." if moved else "")


def _file_detail(fr: FileResult) -> str:
    parts: list[str] = []
    if fr.old_path:
        parts.append(f"renamed from {code(fr.old_path)}")
    if fr.status == "skipped" and fr.reason and fr.not_reviewed is None:
        parts.append(escape_md(fr.reason))
    elif fr.model:
        parts.append(f"{escape_md(fr.tier or '')} · {code(fr.model)}")
    if fr.not_reviewed is not None:
        why = fr.not_reviewed.reason.removeprefix("not reviewed by the model: ")
        parts.append(f"**not reviewed** ({fr.not_reviewed.cause}): {escape_md(why)}")
    if fr.needs_human:
        what = (
            fr.reason if fr.status != "skipped" and fr.covered and fr.reason else "protected path"
        )
        parts.append(f"**needs human review** ({escape_md(what)})")
    return "; ".join(parts) or "—"


def _files_table(files: list[FileResult]) -> str:
    if not files:
        return "_No changed files._"
    # Most interesting first: uncovered, needing a human, with findings; skipped last.
    order = sorted(
        files,
        key=lambda f: (f.covered, not f.needs_human, not f.findings, f.status == "skipped", f.path),
    )
    rows = ["| File | Status | Detail | Findings |", "|---|---|---|---:|"]
    for fr in order[:MAX_FILE_ROWS]:
        status = fr.status if fr.covered else f"{fr.status}, not reviewed"
        rows.append(f"| {code(fr.path)} | {status} | {_file_detail(fr)} | {len(fr.findings)} |")
    if len(order) > MAX_FILE_ROWS:
        rows.append(f"\n… and {len(order) - MAX_FILE_ROWS} more files (see verdict.json).")
    return "\n".join(rows)


def _finding_line(f: Finding) -> str:
    where = f.path + (f":{f.line}" if f.line else "")
    origin = "local check" if f.source == "local" else "model"
    outside = "" if f.in_diff or f.line is None else " (outside the changed lines)"
    return (
        f"- **{f.severity}** {code(where)} {escape_md(f.category, 60)} ({origin}){outside}: "
        f"{escape_md(f.message)}"
    )


def _findings_list(files: list[FileResult]) -> tuple[int, str]:
    findings = [f for fr in files for f in fr.findings]
    if not findings:
        return 0, "_None._"
    findings.sort(key=lambda f: (-severity_rank(f.severity), f.path, f.line or 0))
    lines = [_finding_line(f) for f in findings[:MAX_FINDINGS]]
    if len(findings) > MAX_FINDINGS:
        lines.append(f"- … and {len(findings) - MAX_FINDINGS} more (see verdict.json)")
    return len(findings), "\n".join(lines)


def not_reviewed_section(files: list[FileResult], limit: int = MAX_FILE_ROWS) -> str:
    """Markdown: the files nobody reviewed, by cause, and what a maintainer can do."""
    groups = not_reviewed_by_cause(files)
    if not groups:
        return ""
    total = sum(len(g) for g in groups.values())
    lines = [f"### Not reviewed ({total})", ""]
    shown = 0
    for cause, group in groups.items():
        lines.append(f"**{escape_md(CAUSE_TEXT[cause])}**")
        lines.append("")
        for fr in group[: max(limit - shown, 0)]:
            assert fr.not_reviewed is not None
            why = fr.not_reviewed.reason.removeprefix("not reviewed by the model: ")
            lines.append(f"- {code(fr.path)}: {escape_md(why)}")
        shown += len(group)
        if shown > limit:
            lines.append(f"- … and {shown - limit} more (see verdict.json)")
        lines.append("")
    lines.append(
        "Nothing above was reviewed, so the gate does not pass it. A maintainer who has read "
        "these files can approve this head commit (the gatebot approve workflow, or /gatebot "
        "approve); a new push needs a new approval."
    )
    return "\n".join(lines) + "\n"


def render_summary(
    verdict: Verdict,
    reasons: tuple[str, ...] = (),
    warnings: list[str] | None = None,
    config_label: str = "as given by the caller",
) -> str:
    m = verdict.metrics
    degraded = ""
    if verdict.degraded:
        degraded = (
            f"| Degraded | reviewed locally because {escape_md(verdict.degraded_reason or '?')} |\n"
        )
    count, findings = _findings_list(verdict.files)
    details = [
        f"Input tokens {m.input_tokens:,} (of which cached {m.cached_tokens:,}), "
        f"output tokens {m.output_tokens:,} (of which thinking {m.thoughts_tokens:,}); "
        f"{m.batches} batch(es), {m.files_per_call:g} files per call.",
        _models_line(m),
        f"Files: {m.files_reviewed} reviewed, {m.files_cached} from cache, "
        f"{m.files_skipped} skipped, {m.files_not_reviewed} not reviewed; "
        f"cache hit rate {m.cache_hit_rate:.0%}.",
        f"Saved vs baseline: {savings_text(m)}; took {m.duration_s:.2f} s.",
    ]
    if warnings:
        details.append("")
        details.append("Warnings:")
        details += [f"- {escape_md(w)}" for w in warnings]
    # Imported here: the walkthrough renders with this module's escaping helpers.
    from bot.review.walkthrough import walkthrough_md

    template = Template(
        resources.files("bot.review").joinpath("templates/summary.md").read_text("utf-8")
    )
    return template.substitute(
        icon=_ICONS[verdict.verdict],
        verdict=verdict.verdict,
        reasons="".join(f"- {escape_md(r, 2000)}\n" for r in reasons),
        base_short=verdict.base_sha[:12],
        head_short=verdict.head_sha[:12],
        provider=escape_md(verdict.provider),
        blocking=verdict.blocking_severity,
        config=code(config_label),
        degraded=degraded,
        files_total=m.files_total,
        not_reviewed=not_reviewed_section(verdict.files),
        walkthrough=walkthrough_md(verdict.files),
        files_table=_files_table(verdict.files),
        findings_count=count,
        findings_list=findings,
        api_calls=m.api_calls,
        baseline_calls=m.baseline_api_calls,
        cost=_money(m.cost_usd) + ("" if m.cost_known else " + unknown"),
        baseline_cost=_money(m.baseline_cost_usd),
        cost_details="\n".join(details),
    )
