"""Rollout policy, apart from what happens on one host: hosts in batches of
`rollout.batch_size` (a batch in parallel), stopping once the failed share exceeds
`rollout.max_fail_percentage`; and the exception (exit code) a rollout's failures end with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot import errors
from bot.config.deploy import RolloutConfig
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport, RolloutReport
from bot.errors import DeployFailed, GatebotError, InfrastructureError, UsageError


async def rollout(
    names: list[str],
    one: Callable[[str], Awaitable[HostReport]],
    policy: RolloutConfig,
    reporter: Reporter,
    op: str,
) -> list[HostReport]:
    """Batches of `policy.batch_size` in parallel; stop once failures exceed the percentage."""
    reports: list[HostReport] = []
    for i in range(0, len(names), policy.batch_size):
        batch = names[i : i + policy.batch_size]
        reports += await asyncio.gather(*(one(n) for n in batch))
        failed = sum(1 for r in reports if not r.ok)
        if failed * 100.0 / len(names) > policy.max_fail_percentage:
            rest = names[i + policy.batch_size :]
            for n in rest:
                reports.append(
                    HostReport(
                        target=n,
                        op="rollback" if op == "rollback" else "deploy",
                        status="skipped",
                        error="not attempted: the rollout stopped (max_fail_percentage exceeded)",
                        exit_code=1,
                    )
                )
            if rest:
                reporter.warn(
                    f"{failed} of {len(names)} hosts failed (> {policy.max_fail_percentage}%): "
                    f"stopping; not attempted: {', '.join(rest)}"
                )
            break
    return reports


def raise_for_failures(report: RolloutReport) -> None:
    """Turn failed hosts into the exception (and exit code) of the run."""
    failed = [h for h in report.hosts if not h.ok]
    if not failed:
        return
    if len(report.hosts) == 1:
        h = failed[0]
        found = getattr(errors, h.error_type or "", None)
        cls = found if isinstance(found, type) and issubclass(found, GatebotError) else None
        if cls is None:
            cls = {2: UsageError, 3: InfrastructureError}.get(h.exit_code, DeployFailed)
        raise cls(h.error or f"{h.target}: {report.op} failed")
    text = "; ".join(f"{h.target}: {(h.error or h.status).splitlines()[0]}" for h in failed)
    if all(h.exit_code == 3 for h in failed):
        raise InfrastructureError(f"{len(failed)} of {len(report.hosts)} hosts failed: {text}")
    raise DeployFailed(f"{len(failed)} of {len(report.hosts)} hosts failed: {text}")
