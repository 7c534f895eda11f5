"""A deploy or rollback of one host as one run-history record (bot/metrics/history.py): the
deploy owns its runs, so it records them, once per host, whatever the outcome."""

from __future__ import annotations

from bot import localstate
from bot.deploy.context import DeployContext
from bot.deploy.report import HostReport


def preload() -> None:
    """Import the history's modules ahead of `record` (see steps/base.py `preload_history`)."""
    import bot.metrics.history  # noqa: F401


def record(ctx: DeployContext, report: HostReport) -> None:
    if ctx.cache_dir is None or report.status == "dry-run":
        return
    entry = {
        "kind": report.op,
        "target": report.target,
        "ref": report.ref,
        "sha": report.sha,
        "release": report.live or report.release,
        "ok": report.ok,
        "duration_s": report.duration_s,
        "bytes_sent": report.bytes_sent,
        "files_sent": report.files_sent,
        "audit_duration_s": report.phases.get("audit"),
        "error": report.error if not report.ok else None,
        # 1 = the deploy or its audit failed, 3 = infrastructure (SSH, transfer): monitoring
        # tells them apart by this. None when the run stopped without one of our errors.
        "exit_code": 0 if report.ok else (report.exit_code or None),
    }
    # Imported here: prometheus-client, which a deploy without a history does not need.
    from bot.metrics.history import record_deploy

    try:
        record_deploy(localstate.claim(ctx.cache_dir), entry, ctx.config.metrics)
    except (OSError, ValueError) as exc:
        ctx.reporter.warn(f"could not record the run in the history: {exc}")
