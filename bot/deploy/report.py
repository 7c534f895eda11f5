"""What a deploy, redeploy or rollback did on each host: the per-host report, built from the
results of the run's steps, and the rollout's."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from bot.deploy.steps.base import HostRun
    from bot.errors import GatebotError

Status = Literal[
    "deployed",  # a new release went live
    "switched",  # an existing release of the same sha went live again (no transfer)
    "already-live",  # the sha was live: restart + audit only
    "rolled-back",  # operation rollback succeeded
    "auto-rolled-back",  # went live, failed the audit or restart, previous good is live again
    "dry-run",
    "failed",
    "skipped",  # not attempted: the rollout stopped before this host
]


class HookResult(BaseModel):
    point: str
    command: str
    status: int
    seconds: float
    output: str = Field("", description="the end of its output, secrets masked")


class EnvChange(BaseModel):
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)


class HostReport(BaseModel):
    target: str
    op: Literal["deploy", "rollback"]
    ok: bool = False
    status: Status = "failed"
    ref: str | None = None
    sha: str | None = None
    release: str | None = None
    previous: str | None = Field(None, description="the release that was live before")
    live: str | None = Field(None, description="the release live when the run ended")
    files_sent: int = 0
    bytes_sent: int = Field(
        0, description="bytes written into the upload channel (records and contents)"
    )
    content_bytes_sent: int = 0
    files_reused: int = 0
    bytes_reused: int = Field(0, description="bytes hard-linked from the live release")
    files_deleted: int = 0
    files_hashed: int = Field(
        0, description="files the host read and hashed to check the release against git"
    )
    bytes_hashed: int = 0
    files_hash_known: int = Field(
        0, description="files checked by an id the host already knew for their unchanged inode"
    )
    venv: Literal["reused", "created"] | None = None
    phases: dict[str, float] = Field(default_factory=dict, description="seconds per phase")
    audit: dict[str, Any] | None = None
    rollback_audit: dict[str, Any] | None = None
    hooks: list[HookResult] = Field(
        default_factory=list, description="the configured hooks that ran, in order"
    )
    env: EnvChange | None = Field(
        None, description="the env file's variables added, removed or changed (names only)"
    )
    health: dict[str, Any] | None = Field(
        None, description="the health gate: healthy, attempts, seconds, detail, port, stopped"
    )
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    error_type: str | None = Field(None, description="class of the error (bot.errors)")
    exit_code: int = 0
    duration_s: float = 0.0


class RolloutReport(BaseModel):
    op: Literal["deploy", "rollback"]
    ok: bool
    hosts: list[HostReport]


_STATUS: dict[str, Status] = {
    "already-live": "already-live",
    "reuse": "switched",
    "build": "deployed",
    "rollback": "rolled-back",
    "noop": "rolled-back",
}


def host_report(run: HostRun, error: GatebotError | None, duration_s: float) -> HostReport:
    """The report of one host, built from the results its steps left (bot/deploy/steps/)."""
    plan, c = run.plan, run.counts
    recovery = run.recovery
    if error is None:
        status: Status = "dry-run" if run.dry_run else _STATUS[plan.kind if plan else "build"]
    else:
        status = "auto-rolled-back" if recovery is not None and recovery.rolled_back else "failed"
    ref = run.manifest.ref if run.manifest is not None else run.ref
    sha = run.manifest.sha if run.manifest is not None else plan.sha if plan else run.sha
    previous = plan.previous if plan else None
    if run.dry_run:
        previous = run.live
    return HostReport(
        target=run.name,
        op=run.op,
        ok=error is None,
        status=status,
        ref=ref,
        sha=sha,
        release=None if run.dry_run or plan is None else plan.release,
        previous=previous,
        live=run.live,
        files_sent=c.files_sent,
        bytes_sent=c.bytes_sent,
        content_bytes_sent=c.content_bytes_sent,
        files_reused=c.files_reused,
        bytes_reused=c.bytes_reused,
        files_deleted=c.files_deleted,
        files_hashed=c.files_hashed,
        bytes_hashed=c.bytes_hashed,
        files_hash_known=c.files_hash_known,
        venv=None if run.built is None else ("created" if run.built.venv_created else "reused"),
        phases=dict(run.phases),
        audit=run.audit.report if run.audit else None,
        rollback_audit=recovery.audit.report if recovery and recovery.audit else None,
        hooks=[HookResult(**dataclasses.asdict(h)) for h in run.hooks_ran],
        env=None if run.env_written is None else EnvChange(**run.env_written._asdict()),
        health=_health(run),
        notes=list(run.notes),
        error=None if error is None else str(error),
        error_type=None if error is None else type(error).__name__,
        exit_code=0 if error is None else error.exit_code,
        duration_s=round(duration_s, 4),
    )


def _health(run: HostRun) -> dict[str, Any] | None:
    """The report's `health` entry (the step masked the secrets in what the host said)."""
    if run.health is None:
        return None
    h, s = run.health, run.service
    return {
        "healthy": h.healthy,
        "attempts": h.attempts,
        "seconds": round(h.seconds, 3),
        "detail": h.detail,
        "port": s.port if s else None,
        "socket": s.socket if s else None,
        "stopped": run.stopped,
    }
