"""`gatebot audit`: the nine-layer audit of one target, as JSON report and markdown summary."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import click

from bot.audit.report import AuditReport, render_markdown
from bot.audit.run import audit_target
from bot.config.load import load_config
from bot.deploy.manifest import open_repo, resolve_commit
from bot.errors import AuditFailed, UsageError

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def resolve_sha(repo: Path, rev: str) -> str:
    """A full sha for `rev`: taken as is when it already is one, else resolved in `repo`."""
    if _FULL_SHA.match(rev):
        return rev
    return str(resolve_commit(open_repo(repo), rev).id)


def write_outputs(report: AuditReport, json_path: Path | None, md_path: Path | None) -> str:
    markdown = render_markdown(report)
    try:
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        if md_path is not None:
            md_path.parent.mkdir(parents=True, exist_ok=True)
            md_path.write_text(markdown, encoding="utf-8")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the audit report: {exc}") from None
    return markdown


def echo_report(report: AuditReport) -> None:
    for layer in report.layers:
        mark = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}[layer.status]
        click.echo(f"  {mark:4}  {layer.id:12} {layer.duration_ms:7.0f} ms  {layer.detail}")
    click.echo(report.summary_line())


@click.command("audit")
@click.option("--target", "target_name", required=True, help="deploy.targets entry to audit")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="JSON report")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="markdown report")
@click.option("--sha", help="expected live commit (default: whatever release is live)")
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="git checkout holding the audited commit (its tree is the integrity reference)",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="gatebot.yml")
def audit_cmd(
    target_name: str,
    report_path: Path | None,
    md_path: Path | None,
    sha: str | None,
    repo: Path,
    config_path: Path | None,
) -> None:
    """Run the 9-layer audit of TARGET: exit 0 all pass/skip, 1 a layer failed."""
    config = load_config(config_path, repo)
    targets = config.deploy.targets
    if target_name not in targets:
        known = ", ".join(sorted(targets)) or "none configured"
        raise UsageError(f"--target {target_name}: no such deploy target (known: {known})")
    target = targets[target_name]
    expected = resolve_sha(repo, sha) if sha else None
    report = asyncio.run(
        audit_target(
            target_name,
            target,
            config.audit,
            repo,
            expected,
            os.environ,
            repo,
            ref=sha,
        )
    )
    write_outputs(report, report_path, md_path)
    echo_report(report)
    if not report.passed:
        failed = ", ".join(layer.id for layer in report.failed)
        raise AuditFailed(f"audit of {target_name} failed: {failed}")


COMMANDS: list[click.Command] = [audit_cmd]
