"""The Actions job summary of a deploy or rollback (Markdown): what went live on each host, and
the hooks that ran (output folded), the env file's changes by name, the health gate.

Everything here comes from the report, where secrets were already masked and env values were
never present."""

from __future__ import annotations

import html

from bot.deploy.report import HostReport, RolloutReport


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _hooks(h: HostReport) -> list[str]:
    lines = [f"#### {h.target}: hooks", ""]
    for run in h.hooks:
        verdict = "ok" if run.status == 0 else ("timed out" if run.status == 124 else "FAILED")
        title = html.escape(f"{run.point}: {run.command[:100]} — {verdict} in {run.seconds:.1f}s")
        lines.append(f"<details><summary>{title}</summary>\n")
        lines.append(f"<pre>{html.escape(run.output.strip()[-2000:]) or '(no output)'}</pre>")
        lines.append("</details>")
    return [*lines, ""]


def _env(h: HostReport) -> list[str]:
    assert h.env is not None
    parts = [
        f"{what}: {', '.join(f'`{n}`' for n in names)}"
        for what, names in (
            ("added", h.env.added),
            ("removed", h.env.removed),
            ("changed", h.env.changed),
        )
        if names
    ]
    said = "; ".join(parts) or "unchanged"
    return [f"#### {h.target}: environment file", "", f"{said} (names only)", ""]


def _health(h: HostReport) -> list[str]:
    g = h.health or {}
    where = (
        f"port {g['port']}"
        if g.get("port")
        else (f"socket `{g['socket']}`" if g.get("socket") else "")
    )
    state = "healthy" if g.get("healthy") else "NEVER healthy"
    line = (
        f"{state} after {g.get('seconds', 0):.1f}s, {g.get('attempts')} checks"
        + (f", {where}" if where else "")
        + f": {_cell(str(g.get('detail', '')))}"
    )
    if g.get("stopped"):
        line += f"; stopped the previous release {g['stopped']}"
    return [f"#### {h.target}: health gate", "", line, ""]


def summary_markdown(report: RolloutReport) -> str:
    lines = [
        f"### gatebot {report.op}: {'ok' if report.ok else 'FAILED'}",
        "",
        "| target | status | live release | sha | files sent | bytes sent |",
        "|---|---|---|---|---|---|",
    ]
    for h in report.hosts:
        lines.append(
            f"| {h.target} | {h.status} | {h.live or '-'} | {(h.sha or '')[:7] or '-'} "
            f"| {h.files_sent} | {h.bytes_sent} |"
        )
    lines.append("")
    for h in report.hosts:
        if not h.ok and h.error:
            lines += [f"#### {h.target}: error", "", f"<pre>{html.escape(h.error)}</pre>", ""]
        if h.hooks:
            lines += _hooks(h)
        if h.env is not None:
            lines += _env(h)
        if h.health is not None:
            lines += _health(h)
    return "\n".join(lines)
