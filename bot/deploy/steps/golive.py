"""Steps `switch`, `restart` and `verify`: put the planned release live and prove it works.

`switch` renames a new link over `current` (atomic) and logs it; `restart` runs the target's
restart command in `current`; `verify` runs the 9-layer audit over the deploy's connection.
A failing restart or audit raises `Misbehaved`: the run then rolls back (steps/recover.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.deploy.host.base import AuditRequest
from bot.deploy.manifest import Manifest, build_manifest
from bot.deploy.steps.base import HostRun
from bot.deploy.switch import restart, switch_current
from bot.errors import DeployFailed, GatebotError, UsageError


class Misbehaved(Exception):
    """The release went live and then failed its restart or its audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AuditOutcome:
    ran: bool
    passed: bool
    report: dict[str, Any] | None = None
    summary: str = ""


def manifest_for_audit(run: HostRun, sha: str) -> Manifest | None:
    """The manifest of `sha` from the local repository for the audit, or None when it is not
    there or the audit is off."""
    if run.manifest is not None and run.manifest.sha == sha:
        return run.manifest
    if run.ctx.repo_path is None or not run.ctx.audit:
        return None
    try:
        return build_manifest(run.ctx.repo_path, sha)
    except (UsageError, DeployFailed):
        return None


async def audit(run: HostRun, release_id: str, sha: str) -> AuditOutcome:
    """The 9-layer audit of the live release; logged in the deploy log when it ran."""
    if not run.ctx.audit:
        return AuditOutcome(False, True, summary="audit disabled (--no-audit)")
    request = AuditRequest(
        audit=run.ctx.config.audit,
        expected_sha=sha,
        manifest=manifest_for_audit(run, sha),
        ref=run.manifest.ref if run.manifest is not None else run.ref,
        repo_path=run.ctx.repo_path,
    )
    with run.phase("audit"):
        try:
            report = await run.agent.audit(request)
        except GatebotError as exc:
            outcome = AuditOutcome(True, False, summary=f"audit could not run: {exc}")
        else:
            data = json.loads(report.model_dump_json())
            failed = [layer.id for layer in report.layers if layer.status == "fail"]
            summary = (
                "audit passed" if report.passed else f"audit failed at {', '.join(failed) or '?'}"
            )
            run.say(f"{summary} for {release_id}")
            outcome = AuditOutcome(True, report.passed, data, summary)
    if outcome.ran:
        await run.log(
            "audit", release=release_id, sha=sha, ok=outcome.passed, detail=outcome.summary
        )
    return outcome


async def switch(run: HostRun) -> None:
    assert run.plan is not None
    plan = run.plan
    run.switch_asked = True  # from here on a lost link may have left `current` moved
    with run.phase("switch"):
        await switch_current(run.agent, run.layout, plan.release)
        await run.log(
            "rollback" if run.op == "rollback" else "switch",
            release=plan.release,
            sha=plan.sha,
            previous=plan.previous,
        )
    run.say(f"current -> {plan.release}")
    run.live = plan.release


async def restart_live(run: HostRun) -> None:
    assert run.plan is not None
    run.live = run.plan.release
    try:
        with run.phase("restart"):
            await restart(run.agent, run.layout, run.target, run.plan.release, run.plan.sha)
    except DeployFailed as exc:
        raise Misbehaved(f"restart failed: {exc.message}") from None


async def verify(run: HostRun) -> None:
    assert run.plan is not None
    run.audit = await audit(run, run.plan.release, run.plan.sha)
    if not run.audit.passed:
        raise Misbehaved(run.audit.summary)
    run.switch_asked = False  # live and proven: a later cut does not undo it
