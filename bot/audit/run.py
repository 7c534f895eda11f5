"""Run the nine layers in order, each bounded and timed; skip what a failed layer makes moot.

Two entry points:
- `run_audit(session, ...)`: deploy's flow calls it right after the switch, on its open session.
- `audit_target(...)`: `gatebot audit`; opens its own session, so the network and ssh layers can
  fail before any session exists and the report still has all nine layers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from bot.audit.connect_layers import check_network, check_session
from bot.audit.context import AuditContext, Outcome, failed, passed, skipped
from bot.audit.host_layer import check_host
from bot.audit.release_layers import (
    check_dependencies,
    check_imports,
    check_integrity,
    check_release,
)
from bot.audit.report import LAYER_IDS, AuditReport, LayerResult
from bot.audit.runtime_layers import check_gtw, check_service
from bot.config.audit import AuditConfig
from bot.config.deploy import TargetConfig
from bot.deploy.manifest import Manifest
from bot.errors import GatebotError, TransportError
from bot.ssh import SSHSession, load_credentials, open_session
from bot.ssh.remote import RemoteTimeout

LayerFn = Callable[[AuditContext], Awaitable[Outcome]]

# A layer runs only when every layer it depends on passed; otherwise it is skipped with the reason.
DEPENDS: dict[str, tuple[str, ...]] = {
    "network": (),
    "ssh": ("network",),
    "host": ("ssh",),
    "release": ("ssh",),
    "integrity": ("release",),
    "dependencies": ("release",),
    "imports": ("release",),
    "service": ("ssh",),
    "gtw": ("ssh",),
}

# What a layer must wait for (facts it reads), beyond what it depends on: imports needs the venv
# interpreter the dependencies layer found; gtw runs with the live release's interpreter.
WAITS: dict[str, tuple[str, ...]] = {
    "host": (),
    "release": (),
    "integrity": ("release",),
    "dependencies": ("release",),
    "imports": ("release", "dependencies"),
    "service": (),
    "gtw": ("release",),
}

REMOTE_LAYERS: dict[str, LayerFn] = {
    "host": check_host,
    "release": check_release,
    "integrity": check_integrity,
    "dependencies": check_dependencies,
    "imports": check_imports,
    "service": check_service,
    "gtw": check_gtw,
}

# Time a layer may take beyond its own timeout to kill what it left on the host.
_KILL_GRACE_S = 6.0


def _blocked_by(layer_id: str, results: Mapping[str, LayerResult]) -> str | None:
    for dep in DEPENDS[layer_id]:
        res = results.get(dep)
        if res is None or res.status != "pass":
            why = "failed" if res is not None and res.status == "fail" else "was skipped"
            return f"skipped: {dep} {why}"
    return None


async def _timed(fn: Callable[[], Awaitable[Outcome]], timeout: float) -> tuple[Outcome, float]:
    start = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(fn(), timeout=timeout + _KILL_GRACE_S)
    except RemoteTimeout as exc:
        note = "its remote processes were killed" if exc.killed else "it could not be killed"
        outcome = failed(f"timed out after {exc.seconds:.1f}s (audit.layer_timeout_s); {note}")
    except asyncio.TimeoutError:
        outcome = failed(f"timed out after {timeout:.1f}s (audit.layer_timeout_s)")
    except GatebotError as exc:
        outcome = failed(str(exc))
    return outcome, (time.perf_counter() - start) * 1000


def _result(layer_id: str, outcome: Outcome, ms: float) -> LayerResult:
    return LayerResult(
        id=layer_id,
        status=outcome.status,
        duration_ms=round(ms, 1),
        detail=outcome.detail,
        data=outcome.data,
    )


async def _remote_layers(ctx: AuditContext, results: dict[str, LayerResult]) -> None:
    """Run layers 3-9 over the one session, each as soon as what it waits for is done.

    Independent layers share the connection concurrently (one channel each), which keeps the
    whole audit within seconds; the report order stays the contract order.
    """
    tasks: dict[str, asyncio.Task[None]] = {}

    async def run_one(layer_id: str, fn: LayerFn) -> None:
        waits = [tasks[w] for w in WAITS[layer_id] if w in tasks]
        if waits:
            await asyncio.gather(*waits)
        reason = _blocked_by(layer_id, results)
        if reason is not None:
            results[layer_id] = _result(layer_id, skipped(reason), 0)
            return
        outcome, ms = await _timed(lambda: fn(ctx), ctx.timeout_of(layer_id))
        results[layer_id] = _result(layer_id, outcome, ms)

    for layer_id, fn in REMOTE_LAYERS.items():
        tasks[layer_id] = asyncio.create_task(run_one(layer_id, fn), name=f"audit-{layer_id}")
    await asyncio.gather(*tasks.values())


def _report(
    ctx: AuditContext,
    results: dict[str, LayerResult],
    started_at: datetime,
    t0: float,
    ref: str | None,
) -> AuditReport:
    for layer_id in LAYER_IDS:
        if layer_id not in results:
            reason = _blocked_by(layer_id, results) or "skipped: not run"
            results[layer_id] = _result(layer_id, skipped(reason), 0)
    layers = [results[layer_id] for layer_id in LAYER_IDS]
    return AuditReport(
        target=ctx.name,
        ref=ref,
        sha=ctx.expected_sha or ctx.live_sha,
        release=ctx.release_id,
        started_at=started_at,
        duration_s=round(time.perf_counter() - t0, 3),
        passed=all(layer.status != "fail" for layer in layers),
        layers=layers,
    )


async def run_audit(
    session: SSHSession,
    name: str,
    target: TargetConfig,
    audit: AuditConfig,
    *,
    expected_sha: str | None,
    manifest: Manifest | None,
    ref: str | None = None,
    repo_path: Path | None = None,
) -> AuditReport:
    """Audit `target` over an already open session (deploy's flow, right after the switch).

    Never raises for a failing layer: the report says what failed (`passed` is False).
    """
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    ctx = AuditContext(
        name,
        target,
        audit,
        expected_sha=expected_sha,
        manifest=manifest,
        repo_path=repo_path,
        session=session,
    )
    results: dict[str, LayerResult] = {}
    outcome, ms = await _timed(lambda: check_network(target, name), target.connect_timeout_s)
    results["network"] = _result("network", outcome, ms)
    outcome, ms = await _timed(lambda: check_session(ctx), ctx.timeout_of("ssh"))
    results["ssh"] = _result("ssh", outcome, ms)
    await _remote_layers(ctx, results)
    return _report(ctx, results, started_at, t0, ref)


async def audit_target(
    name: str,
    target: TargetConfig,
    audit: AuditConfig,
    repo_path: Path | None,
    expected_sha: str | None,
    env: Mapping[str, str],
    base: Path,
    *,
    ref: str | None = None,
    manifest: Manifest | None = None,
) -> AuditReport:
    """Open a session and audit; `expected_sha=None` audits whatever release is live.

    Raises ConfigError when the key or known_hosts settings are unusable (that is not a finding
    about the host). Everything the host does wrong lands in the report.
    """
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    ctx = AuditContext(
        name, target, audit, expected_sha=expected_sha, manifest=manifest, repo_path=repo_path
    )
    results: dict[str, LayerResult] = {}
    outcome, ms = await _timed(lambda: check_network(target, name), target.connect_timeout_s)
    results["network"] = _result("network", outcome, ms)
    if outcome.status != "pass":
        return _report(ctx, results, started_at, t0, ref)
    creds = load_credentials(name, target, env, base)
    start = time.perf_counter()
    try:
        async with open_session(name, target, creds) as session:
            handshake = (time.perf_counter() - start) * 1000
            where = f"{target.user}@{target.host}:{target.port}"
            results["ssh"] = _result(
                "ssh",
                passed(
                    f"{where}: host key matches the pinned entry, key auth accepted "
                    f"({handshake:.0f} ms)",
                    handshake_ms=round(handshake, 1),
                ),
                handshake,
            )
            ctx.session = session
            await _remote_layers(ctx, results)
    except TransportError as exc:
        # Before the handshake completed this is the ssh layer's finding (refused, wrong host
        # key, bad key); after it, the connection broke while closing: an infrastructure error.
        if "ssh" in results:
            raise
        ms = (time.perf_counter() - start) * 1000
        results["ssh"] = _result("ssh", failed(str(exc)), ms)
    return _report(ctx, results, started_at, t0, ref)
