"""`gatebot audit`: the nine-layer audit of one target, as JSON report and markdown summary."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot import localstate
from bot.audit.report import AuditReport, render_markdown
from bot.cli.options import cache_dir_option, config_option, repo_option
from bot.config.load import load_config
from bot.errors import AuditFailed, GatebotError, UsageError
from bot.git.diff import open_repo, resolve_commit
from bot.github.outlet import ActionsOutlet

if TYPE_CHECKING:
    from bot.config.metrics import MetricsConfig
    from bot.metrics.records import DeployRecord

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
        ActionsOutlet.from_env(os.environ).summary(markdown, full="the audit report (--report)")
    except OSError as exc:
        raise UsageError(f"cannot write the audit report: {exc}") from None
    return markdown


def record_run(
    cache_dir: Path, record: DeployRecord, metrics: MetricsConfig, env: Mapping[str, str]
) -> None:
    """Append the run to the history; a failing write is a warning, never the audit's result."""
    from bot.metrics.history import record_deploy

    try:
        record_deploy(localstate.claim(cache_dir), record, metrics, env=env)
    except (OSError, ValueError) as exc:
        ActionsOutlet.from_env(env).warning(f"audit not recorded in the run history: {exc}")


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
@repo_option("git checkout holding the audited commit (its tree is the integrity reference)")
@config_option("configuration file (default: .github/gatebot.yml in --repo)")
@cache_dir_option(
    "where the run history (history.jsonl) is kept, beside the review cache "
    "(default: $GATEBOT_CACHE_DIR or .gatebot-cache)"
)
def audit_cmd(
    target_name: str,
    report_path: Path | None,
    md_path: Path | None,
    sha: str | None,
    repo: Path,
    config_path: Path | None,
    cache_dir: Path | None,
) -> None:
    """Run the 9-layer audit of TARGET: exit 0 all pass/skip, 1 a layer failed."""
    # Imported here: every command module loads at start-up, the run history only when it runs.
    from bot.audit.record import audit_record
    from bot.audit.run import audit_target  # asyncssh
    from bot.localstate import resolve_cache_dir
    from bot.metrics.records import DeployRecord

    config = load_config(config_path, repo)
    target = config.deploy.target(target_name)
    expected = resolve_sha(repo, sha) if sha else None
    env = dict(os.environ)
    history = resolve_cache_dir(cache_dir, env)
    started = time.perf_counter()
    try:
        report = asyncio.run(
            audit_target(
                target_name,
                target,
                config.audit,
                repo,
                expected,
                env,
                repo,
                ref=sha,
            )
        )
    except GatebotError as exc:
        # No report (e.g. the connection broke mid-audit): still a run that ended in an error.
        failed_run = DeployRecord(
            kind="audit",
            target=target_name,
            ref=sha,
            sha=expected,
            ok=False,
            duration_s=round(time.perf_counter() - started, 3),
            error=str(exc),
            exit_code=exc.exit_code,
        )
        record_run(history, failed_run, config.metrics, env)
        raise
    budget = config.audit.gtw.budget_ms if config.audit.gtw is not None else None
    try:
        write_outputs(report, report_path, md_path)
    except UsageError as exc:
        record_run(
            history, audit_record(report, exc.exit_code, str(exc), budget), config.metrics, env
        )
        raise
    echo_report(report)
    code = 0 if report.passed else AuditFailed.exit_code
    record_run(history, audit_record(report, code, budget_ms=budget), config.metrics, env)
    if not report.passed:
        failed = ", ".join(layer.id for layer in report.failed)
        raise AuditFailed(f"audit of {target_name} failed: {failed}")


COMMANDS: list[click.Command] = [audit_cmd]
