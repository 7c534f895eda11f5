"""What a deploy, redeploy or rollback did on each host: the per-host report and the rollout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    error_type: str | None = Field(None, description="class of the error (bot.errors)")
    exit_code: int = 0
    duration_s: float = 0.0


class RolloutReport(BaseModel):
    op: Literal["deploy", "rollback"]
    ok: bool
    hosts: list[HostReport]
