"""Orchestration: deploy / redeploy / rollback / releases / unlock, per host and rolled out.

Deploy of one host (one SSH connection, under the deploy lock):
  state -> (sha live? restart + audit, no transfer) | (a complete release holds the sha? switch to
  it) | (seed from live, send the changes, link shared, venv, verify on the host, marker)
  -> switch `current` -> restart -> audit -> retention.
A failing restart or audit after the switch rolls back by itself: `current` goes back to the
previous good release, restart and audit run again, the failed release is marked bad in the
deploy log and the run fails with DeployFailed saying what is live. A connection lost after the
switch does the same over a fresh connection (restart, no audit) and fails with TransportError.
Any failure before the switch leaves `current` untouched; a failed upload removes its half-written
release directory.

Several targets roll out in batches of `rollout.batch_size` (hosts of a batch in parallel) and
stop when the failed share exceeds `rollout.max_fail_percentage`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import json
import posixpath
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from bot import errors
from bot.config.deploy import RolloutConfig, TargetConfig
from bot.config.model import GatebotConfig
from bot.deploy import log as deploy_log
from bot.deploy.agent import Agent, AgentError
from bot.deploy.integrity import HashReuse, IntegrityResult, remote_hashes, verify_remote
from bot.deploy.layout import (
    RELEASE_MANAGED,
    RELEASE_MARKER,
    RemoteLayout,
    check_release_id,
    integrity_excludes,
    is_excluded,
    lock_hash,
    make_release_id,
    shared_link_target,
    sorted_releases,
)
from bot.deploy.lock import DeployLock, LockOwner, new_owner, release_lock
from bot.deploy.manifest import (
    Manifest,
    build_manifest,
    old_entries_from_diff,
    open_repo,
    read_blob,
)
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport, RolloutReport
from bot.deploy.retention import apply_prune, plan_prune
from bot.deploy.state import ReleaseMarker, RemoteState, read_state
from bot.deploy.switch import restart, switch_current
from bot.deploy.transfer import (
    TransferPlan,
    plan_transfer,
    prepare_next,
    seed_release,
    send_changes,
)
from bot.deploy.venv import ensure_venv
from bot.errors import (
    DeployFailed,
    GatebotError,
    InfrastructureError,
    LockHeld,
    TransportError,
    UsageError,
)
from bot.ssh.credentials import load_credentials
from bot.ssh.session import SSHSession, open_session


@dataclass
class DeployContext:
    """Everything a run needs, read once by the CLI and passed down."""

    config: GatebotConfig
    env: Mapping[str, str]
    base: Path  # resolves relative identity/known_hosts files
    reporter: Reporter
    repo_path: Path | None = None
    cache_dir: Path | None = None
    run_id: str = ""
    audit: bool = True

    def target(self, name: str) -> TargetConfig:
        targets = self.config.deploy.targets
        if name not in targets:
            known = ", ".join(sorted(targets)) or "none configured"
            raise UsageError(f"unknown target {name!r} (deploy.targets: {known})")
        return targets[name]

    def owner(self, op: str) -> LockOwner:
        return new_owner(op, self.env, self.run_id or None)


def resolve_targets(config: GatebotConfig, names: list[str]) -> list[str]:
    """`all` means every configured target; otherwise each name must be configured."""
    targets = config.deploy.targets
    if not targets:
        raise UsageError("no deploy targets configured (deploy.targets in .github/gatebot.yml)")
    if not names or "all" in names:
        if names and names != ["all"]:
            raise UsageError("--target all cannot be combined with other targets")
        if not names:
            raise UsageError("name a target with --target NAME (or --target all)")
        return sorted(targets)
    out: list[str] = []
    for n in names:
        if n not in targets:
            raise UsageError(f"unknown target {n!r} (deploy.targets: {', '.join(sorted(targets))})")
        if n not in out:
            out.append(n)
    return out


@asynccontextmanager
async def connected(ctx: DeployContext, name: str) -> AsyncIterator[SSHSession]:
    target = ctx.target(name)
    creds = load_credentials(name, target, ctx.env, ctx.base)
    async with open_session(name, target, creds) as session:
        yield session


@asynccontextmanager
async def agent_for(session: SSHSession) -> AsyncIterator[Agent]:
    agent = await Agent.start(session)
    try:
        yield agent
    finally:
        await agent.close()


@dataclass
class HostRun:
    ctx: DeployContext
    name: str
    session: SSHSession
    agent: Agent
    report: HostReport
    layout: RemoteLayout = field(init=False)
    lock_run_id: str | None = None  # the run id on our deploy lock, once taken

    def __post_init__(self) -> None:
        self.layout = RemoteLayout(self.session.target.path)

    @property
    def target(self) -> TargetConfig:
        return self.session.target

    def say(self, message: str) -> None:
        self.ctx.reporter.line(self.name, message)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - start
            self.report.phases[name] = round(self.report.phases.get(name, 0.0) + took, 4)

    async def log(self, event: deploy_log.Event, **fields: Any) -> None:
        await deploy_log.append_event(
            self.agent,
            self.layout,
            deploy_log.make_event(event, run_id=self.ctx.run_id or None, **fields),
        )

    def lock(self) -> DeployLock:
        ctx, name = self.ctx, self.name
        target = self.target
        creds = load_credentials(name, target, ctx.env, ctx.base)
        return DeployLock(
            self.agent,
            self.layout,
            ctx.owner(self.report.op),
            wait_s=target.lock_wait_s,
            reopen=lambda: open_session(name, target, creds),
            on_wait=lambda msg: self.say(msg),
        )


# ---------------------------------------------------------------------------------------------
# audit


@dataclass
class AuditOutcome:
    ran: bool
    passed: bool
    report: dict[str, Any] | None = None
    summary: str = ""


async def run_audit_step(
    run: HostRun, release_id: str, sha: str, manifest: Manifest | None
) -> AuditOutcome:
    """The 9-layer audit, when `bot.audit.run` is available; a missing module is a visible skip."""
    if not run.ctx.audit:
        return AuditOutcome(False, True, summary="audit disabled (--no-audit)")
    try:
        module = importlib.import_module("bot.audit.run")
        fn = module.run_audit
    except (ModuleNotFoundError, AttributeError) as exc:
        note = f"audit skipped: bot.audit.run is not available ({exc})"
        run.report.notes.append(note)
        run.say(note)
        return AuditOutcome(False, True, summary=note)
    try:
        result = fn(
            run.session,
            run.name,
            run.target,
            run.ctx.config.audit,
            expected_sha=sha,
            manifest=manifest,
            ref=run.report.ref,
            repo_path=run.ctx.repo_path,
        )
        if inspect.isawaitable(result):
            result = await result
    except NotImplementedError:
        note = "audit skipped: run_audit is not implemented yet"
        run.report.notes.append(note)
        return AuditOutcome(False, True, summary=note)
    except GatebotError as exc:
        return AuditOutcome(True, False, summary=f"audit could not run: {exc}")
    data = json.loads(result.model_dump_json())
    passed = bool(result.passed)
    failed = [layer["id"] for layer in data.get("layers", []) if layer.get("status") == "fail"]
    summary = "audit passed" if passed else f"audit failed at {', '.join(failed) or '?'}"
    run.say(f"{summary} for {release_id}")
    return AuditOutcome(True, passed, data, summary)


def _manifest_for(run: HostRun, sha: str, ref: str, *, for_audit: bool = False) -> Manifest | None:
    """The manifest of `sha` from the local repository, or None when it is not there (or only
    the audit would use it and the audit is off)."""
    if run.ctx.repo_path is None or (for_audit and not run.ctx.audit):
        return None
    try:
        return build_manifest(run.ctx.repo_path, sha)
    except (UsageError, DeployFailed):
        return None


# ---------------------------------------------------------------------------------------------
# building a release


async def _link_shared(run: HostRun, release_dir: str, shared: tuple[str, ...]) -> None:
    for name in shared:
        try:
            await run.agent.call(
                "link",
                path=posixpath.join(release_dir, name),
                target=shared_link_target(name),
                mkdir=run.layout.shared_entry(name),
            )
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: linking shared entry {name!r} failed: {exc}") from None


def _git_old_entries(
    run: HostRun, state: RemoteState, deployed: Manifest, shared: tuple[str, ...]
) -> dict[str, tuple[int, str]] | None:
    """What the live release holds, from git: only when its commit is in the local repository.
    A diff of the two trees (libgit2 skips subtrees whose ids are equal) names what changed;
    every other path holds what the new tree holds. The host's check before going live finds
    anything else (a file edited by hand) and the deploy sends it again."""
    marker = state.live_marker
    if marker is None or run.ctx.repo_path is None:
        return None
    try:
        return old_entries_from_diff(open_repo(run.ctx.repo_path), marker.sha, deployed, shared)
    except (UsageError, DeployFailed):
        return None


async def _old_entries(
    run: HostRun,
    state: RemoteState,
    release_dir: str,
    deployed: Manifest,
    shared: tuple[str, ...],
) -> dict[str, tuple[int, str]] | None:
    """What the (seeded) release holds: from git when possible (no remote read), else from
    the host's own hashes of it."""
    if state.live_marker is None:
        return None
    found = _git_old_entries(run, state, deployed, shared)
    if found is not None:
        return found
    excl = integrity_excludes(shared)
    # The seed's files are the live release's inodes: its index saves reading them (a shallow
    # clone that lacks the live commit would otherwise have the host read the whole tree).
    reuse = dataclasses.replace(_hash_reuse(run, state.live), record=False, written=False)
    hashes = await remote_hashes(run.session, release_dir, excl, agent=run.agent, reuse=reuse)
    return {p: (m, o) for p, (m, o, _s) in hashes.items()}


def _hash_reuse(run: HostRun, seeded_from: str | None) -> HashReuse:
    """What the host may reuse when it checks a release built here (`deploy.<t>.verify`):
    with `index`, the ids of the files it wrote and those of the release the seed linked from;
    with `full`, nothing. The release's own index is recorded either way, for the next one."""
    if run.target.verify == "full":
        return HashReuse(record=True, written=False)
    trust = (run.layout.release_index(seeded_from),) if seeded_from else ()
    return HashReuse(trust=trust, record=True, written=True)


def _count_hashing(run: HostRun, check: IntegrityResult) -> None:
    run.report.files_hashed += check.hashed_files
    run.report.bytes_hashed += check.hashed_bytes
    run.report.files_hash_known += check.known_files


async def _send(
    run: HostRun, release_dir: str, repo: Any, plan: TransferPlan, *, fresh: bool = False
) -> None:
    advance = run.ctx.reporter.upload(run.name, plan.send_bytes, len(plan.send))
    try:
        stats = await send_changes(
            run.agent, release_dir, repo, plan, on_bytes=advance, fresh=fresh
        )
    finally:
        run.ctx.reporter.upload_done(run.name)
    run.report.files_sent += stats.files_sent
    run.report.bytes_sent += stats.stream_bytes_sent
    run.report.content_bytes_sent += stats.content_bytes_sent
    run.report.files_deleted += stats.files_deleted


async def _drop_cut_release(run: HostRun, state: RemoteState, release_id: str) -> None:
    """Remove the release directory a failed upload left half written (a full disk keeps its
    space otherwise, and the next deploy fails the same way). Never the live release or a
    complete one; over a dead connection it stays for retention to remove."""
    if release_id == state.live or state.markers.get(release_id) is not None:
        return
    try:
        await run.agent.call("remove", paths=[run.layout.release(release_id)])
    except (AgentError, GatebotError) as exc:
        note = f"the cut release {release_id} stays on the host for retention to remove: {exc}"
        run.report.notes.append(note)
        return
    run.say(f"removed the cut release {release_id}")


async def build_release(
    run: HostRun, state: RemoteState, manifest: Manifest, release_id: str
) -> str:
    """Make releases/<release_id> complete on the host; returns its lock hash."""
    target = run.target
    shared = tuple(posixpath.normpath(s) for s in target.shared)
    deployed = manifest.without(shared)
    release_dir = run.layout.release(release_id)
    repo = open_repo(manifest.repo_path)
    lock_entry = manifest.get(target.lock_file) if target.lock_file else None
    lh = lock_hash(read_blob(repo, lock_entry.oid) if lock_entry else None)
    live = state.live if state.live_marker is not None else None
    reserved = [e.path for e in deployed if is_excluded(e.path, RELEASE_MANAGED)]
    if reserved:
        # Uploaded like any file (the tree is deployed as committed), then replaced by gatebot's
        # own: a committed marker never names this release, so it never makes it complete
        # (state._marker), even when the deploy is cut before gatebot writes the real one.
        note = (
            f"the tree holds gatebot's bookkeeping names ({', '.join(reserved)}): they are "
            "replaced by gatebot's own and never count as this release's marker or venv"
        )
        run.report.notes.append(note)
        run.say(note)

    with run.phase("seed"):
        # The host links the seed while we read the live release's tree from git.
        from_standby, old = await asyncio.gather(
            seed_release(
                run.agent,
                run.layout.release(live) if live else None,
                release_dir,
                (*RELEASE_MANAGED, *shared),
                standby=target.prepare_next,
            ),
            asyncio.to_thread(_git_old_entries, run, state, deployed, shared),
        )
    if from_standby:
        run.say(f"seeded from the copy of {live} prepared after the last deploy")
    with run.phase("plan"):
        if old is None and live is not None:
            old = await _old_entries(run, state, release_dir, deployed, shared)
        plan = plan_transfer(deployed, old)
    run.report.files_reused = plan.reused_files
    run.report.bytes_reused = plan.reused_bytes
    run.say(
        f"{len(plan.send)} files to send ({plan.send_bytes} bytes), {len(plan.delete)} to "
        f"delete, {plan.reused_files} reused"
    )
    if not plan.empty:
        with run.phase("upload"):
            try:
                await _send(run, release_dir, repo, plan, fresh=live is None)
            except GatebotError:
                await _drop_cut_release(run, state, release_id)
                raise
    with run.phase("shared"):
        await _link_shared(run, release_dir, shared)
    with run.phase("venv"):
        res = await ensure_venv(
            run.agent, run.layout, target, lh, release_dir, complete=state.venvs.get(lh, False)
        )
    run.report.venv = "created" if res.created else "reused"
    excl = integrity_excludes(shared)
    reuse = _hash_reuse(run, live)

    async def check_release() -> IntegrityResult:
        # Strict (ignore_extra=None): a new release holds exactly the tree, so bytecode caches
        # the seed carried over from the live release are removed by the repair below.
        found = await verify_remote(
            run.session,
            release_dir,
            deployed,
            excl,
            agent=run.agent,
            ignore_extra=None,
            reuse=reuse,
        )
        _count_hashing(run, found)
        return found

    with run.phase("verify"):
        check = await check_release()
        if not check.ok:
            # The seed carried files edited on the host: send those again, once.
            run.say(f"repairing drift in the seeded tree: {check.summary()}")
            fix = TransferPlan(
                tuple(e for e in deployed if e.path in {*check.missing, *check.changed}),
                check.extra,
                0,
                0,
            )
            await _send(run, release_dir, repo, fix)
            check = await check_release()
        if not check.ok:
            raise DeployFailed(
                f"{run.name}: {release_id} does not match the git tree after upload: "
                f"{check.summary()}; nothing went live"
            )
    marker = ReleaseMarker(
        release=release_id,
        sha=manifest.sha,
        ref=manifest.ref,
        lock_hash=lh,
        manifest_digest=manifest.digest,
        files=len(deployed),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with run.phase("marker"):
        try:
            await run.agent.call(
                "write_file",
                path=posixpath.join(release_dir, RELEASE_MARKER),
                text=marker.model_dump_json(),
            )
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: writing the completion marker failed: {exc}") from None
        await run.log("release", release=release_id, sha=manifest.sha, previous=state.live)
    return lh


# ---------------------------------------------------------------------------------------------
# going live, and coming back


async def go_live(
    run: HostRun,
    release_id: str,
    sha: str,
    manifest: Manifest | None,
    *,
    previous: str | None,
    fallback: str | None,
    event: deploy_log.Event = "switch",
) -> None:
    """Switch to `release_id` (unless live), restart, audit; on failure roll back to `fallback`.
    A connection lost once the switch was asked for rolls back over a fresh connection."""
    if previous == release_id:
        # Nothing switched: a cut here leaves `current` where it was.
        await _restart_and_audit(run, release_id, sha, manifest, fallback)
        return
    try:
        with run.phase("switch"):
            await switch_current(run.agent, run.layout, release_id)
            await run.log(event, release=release_id, sha=sha, previous=previous)
        run.say(f"current -> {release_id}")
        run.report.live = release_id
        await _restart_and_audit(run, release_id, sha, manifest, fallback)
    except TransportError as exc:
        await recover_after_cut(run, release_id, fallback, exc)


async def _restart_and_audit(
    run: HostRun, release_id: str, sha: str, manifest: Manifest | None, fallback: str | None
) -> None:
    run.report.live = release_id
    try:
        with run.phase("restart"):
            await restart(run.agent, run.layout, run.target, release_id, sha)
    except DeployFailed as exc:
        await auto_rollback(run, release_id, fallback, f"restart failed: {exc.message}")
        return
    with run.phase("audit"):
        outcome = await run_audit_step(run, release_id, sha, manifest)
    run.report.audit = outcome.report
    if outcome.ran:
        await run.log(
            "audit", release=release_id, sha=sha, ok=outcome.passed, detail=outcome.summary
        )
    if not outcome.passed:
        await auto_rollback(run, release_id, fallback, outcome.summary)


async def recover_after_cut(
    run: HostRun, failed: str, fallback: str | None, cause: TransportError
) -> NoReturn:
    """The link died after `current` was (maybe) switched to `failed`, which was then never
    restarted or audited to the end: reconnect and put `fallback` back live, as a failed
    audit would. Always raises TransportError (exit 3: the cause is the link) saying what is
    live; when even the reconnect fails, says how to recover by hand."""
    lost = cause.message
    run.say(f"{lost}: reconnecting to roll back to {fallback or '(none)'}")
    try:
        async with connected(run.ctx, run.name) as session, agent_for(session) as agent:
            fresh = HostRun(run.ctx, run.name, session, agent, run.report)
            with fresh.phase("rollback"):
                outcome = await _roll_back_after_cut(fresh, failed, fallback, lost)
    except GatebotError as exc:
        back = f" --to {fallback}" if fallback else ""
        unlock = (
            f"gatebot unlock --target {run.name} --owner {run.lock_run_id} (if its lock is "
            "left), then "
            if run.lock_run_id
            else ""
        )
        raise TransportError(
            f"{lost}. Rolling back over a fresh connection failed too ({exc.message}): "
            f"`current` may still point at {failed}, which was never restarted or audited",
            hint=f"when the host is reachable: {unlock}gatebot rollback --target {run.name}{back}",
        ) from None
    raise TransportError(f"{lost}. {outcome}")


async def _roll_back_after_cut(run: HostRun, failed: str, fallback: str | None, lost: str) -> str:
    """The rollback half of `recover_after_cut`, on a fresh connection; returns what it did.
    Idempotent: the cut may have come before the rename, or in the middle of auto_rollback."""
    state = await read_state(run.agent, run.layout)
    reason = f"the connection was lost after the switch ({lost})"
    if fallback is None or fallback == failed:
        if state.live == failed:
            if failed not in state.bad:
                await run.log("bad", release=failed, ok=False, detail=reason)
            return (
                f"There is no earlier good release to roll back to: {failed} stays live, "
                "never restarted or audited, and is marked bad"
            )
        return f"`current` was not switched: {state.live or 'nothing'} is live"
    # The failed release was live (possibly only for a moment) unless the cut came before the
    # rename; a rollback that had already begun (status) restarted into the fallback.
    was_live = state.live != fallback or run.report.status == "auto-rolled-back"
    if state.live != fallback:
        await switch_current(run.agent, run.layout, fallback)
        await run.log("rollback", release=fallback, previous=failed, detail=reason)
    if was_live and failed not in state.bad:
        await run.log("bad", release=failed, ok=False, detail=reason)
    if not was_live:
        return f"`current` was not switched: {fallback} is still live"
    run.report.live = fallback
    run.report.status = "auto-rolled-back"
    marker = state.markers.get(fallback)
    restart_note = ""
    if run.target.restart:
        try:
            await restart(run.agent, run.layout, run.target, fallback, marker.sha if marker else "")
            restart_note = ", restarted"
        except DeployFailed as exc:
            restart_note = f"; its restart failed: {exc.message}"
    return (
        f"Rolled back over a fresh connection: {fallback} is live again{restart_note} (not "
        f"audited again); {failed} is marked bad"
    )


async def auto_rollback(run: HostRun, failed: str, fallback: str | None, reason: str) -> None:
    """Put `fallback` back live after `failed` misbehaved; always raises DeployFailed."""
    if fallback is None or fallback == failed:
        await run.log("bad", release=failed, ok=False, detail=reason)
        raise DeployFailed(
            f"{run.name}: {reason}; there is no earlier good release to roll back to, so "
            f"{failed} stays live and is marked bad"
        )
    run.say(f"{reason}: rolling back to {fallback}")
    with run.phase("rollback"):
        await switch_current(run.agent, run.layout, fallback)
        await run.log("rollback", release=fallback, previous=failed, detail=reason)
        await run.log("bad", release=failed, ok=False, detail=reason)
    run.report.live = fallback
    run.report.status = "auto-rolled-back"
    state = await read_state(run.agent, run.layout)
    marker = state.markers.get(fallback)
    sha = marker.sha if marker else ""
    restart_note = ""
    try:
        await restart(run.agent, run.layout, run.target, fallback, sha)
    except DeployFailed as exc:
        restart_note = f"; the restart after the rollback failed too: {exc.message}"
    with run.phase("audit"):
        again = await run_audit_step(
            run, fallback, sha, _manifest_for(run, sha, sha, for_audit=True)
        )
    run.report.rollback_audit = again.report
    if again.ran:
        await run.log("audit", release=fallback, sha=sha, ok=again.passed, detail=again.summary)
    verdict = "passed" if again.passed else f"FAILED ({again.summary})"
    raise DeployFailed(
        f"{run.name}: {failed} failed: {reason}. Rolled back automatically: {fallback} is live "
        f"(its audit {verdict}){restart_note}; {failed} is marked bad"
    )


async def _prune(run: HostRun, keep_also: str | None) -> None:
    state = await read_state(run.agent, run.layout)
    plan = plan_prune(
        state.markers,
        state.venvs,
        keep=run.target.keep_releases,
        live=state.live,
        previous_good=state.previous_good() or keep_also,
    )
    if plan.empty:
        return
    with run.phase("prune"):
        await apply_prune(run.agent, run.layout, plan)
        detail = (
            f"releases: {', '.join(plan.releases) or '-'}; venvs: {', '.join(plan.venvs) or '-'}"
        )
        await run.log("prune", detail=detail)
    run.say(f"pruned {len(plan.releases)} releases, {len(plan.venvs)} venvs")


# ---------------------------------------------------------------------------------------------
# operations on one host


async def _deploy_locked(run: HostRun, manifest: Manifest) -> None:
    with run.phase("state"):
        state = await read_state(run.agent, run.layout)
    if state.current_kind == "other":
        raise DeployFailed(f"{run.name}: {run.layout.current} exists but is not a symlink")
    live = state.live
    run.report.previous = live
    run.report.live = live
    # Where to go back to if this deploy misbehaves once live.
    live_ok = live is not None and state.live_marker is not None and live not in state.bad
    fallback = live if live_ok else state.previous_good()
    if state.live_marker is not None and state.live_marker.sha == manifest.sha:
        run.report.status = "already-live"
        run.report.release = live
        run.say(f"{manifest.sha[:7]} is already live as {live}: no transfer")
        assert live is not None
        await go_live(
            run,
            live,
            manifest.sha,
            manifest,
            previous=live,
            fallback=state.previous_good(),
        )
        return
    reuse = state.release_of_sha(manifest.sha)
    if reuse is not None:
        reuse_marker = state.markers[reuse]
        assert reuse_marker is not None
        if state.venvs.get(reuse_marker.lock_hash):
            excl = integrity_excludes(run.target.shared)
            with run.phase("verify"):
                # Its own index: files of a checked release, unchanged since, are not read again.
                own = _hash_reuse(run, reuse)
                check = await verify_remote(
                    run.session,
                    run.layout.release(reuse),
                    manifest,
                    excl,
                    agent=run.agent,
                    reuse=dataclasses.replace(own, record=False, written=False),
                )
                _count_hashing(run, check)
            if check.ok:
                run.say(f"{manifest.sha[:7]} is already on the host as {reuse}: no transfer")
                run.report.status = "switched"
                run.report.release = reuse
                await go_live(run, reuse, manifest.sha, manifest, previous=live, fallback=fallback)
                return
            run.say(f"{reuse} was edited on the host ({check.summary()}): building anew")
    release_id = make_release_id(manifest.sha, datetime.now(timezone.utc), set(state.markers))
    run.report.release = release_id
    await build_release(run, state, manifest, release_id)
    run.report.status = "deployed"
    await go_live(run, release_id, manifest.sha, manifest, previous=live, fallback=fallback)
    await _prune(run, fallback)


async def _dry_run(run: HostRun, manifest: Manifest) -> None:
    state = await read_state(run.agent, run.layout)
    shared = tuple(posixpath.normpath(s) for s in run.target.shared)
    run.report.previous = state.live
    run.report.live = state.live
    run.report.status = "dry-run"
    if state.live_marker is not None and state.live_marker.sha == manifest.sha:
        run.say(f"dry run: {manifest.sha[:7]} is already live as {state.live}; nothing to send")
        return
    old = None
    deployed = manifest.without(shared)
    if state.live is not None and state.live_marker is not None:
        old = await _old_entries(run, state, run.layout.release(state.live), deployed, shared)
    plan = plan_transfer(deployed, old)
    run.report.files_reused = plan.reused_files
    run.report.bytes_reused = plan.reused_bytes
    run.say(
        f"dry run: would send {len(plan.send)} files ({plan.send_bytes} bytes), delete "
        f"{len(plan.delete)}, reuse {plan.reused_files} ({plan.reused_bytes} bytes)"
    )
    for e in plan.send[:50]:
        run.say(f"  send {e.path} ({e.size} bytes)")
    for p in plan.delete[:50]:
        run.say(f"  delete {p}")


async def _rollback_locked(run: HostRun, to: str | None) -> None:
    with run.phase("state"):
        state = await read_state(run.agent, run.layout)
    live = state.live
    run.report.previous = live
    run.report.live = live
    if to is not None:
        try:
            check_release_id(to)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if to not in state.markers:
            have = ", ".join(state.complete[-5:]) or "none"
            raise DeployFailed(f"{run.name}: no release {to} on the host (newest: {have})")
        if state.markers[to] is None:
            raise DeployFailed(f"{run.name}: release {to} is incomplete (a cut deploy)")
        if to in state.bad:
            raise DeployFailed(
                f"{run.name}: release {to} is marked bad in the deploy log",
                hint="deploy its commit again to make a fresh release",
            )
        chosen = to
    else:
        found = state.previous_good()
        if found is None:
            raise DeployFailed(f"{run.name}: no earlier good release to roll back to")
        chosen = found
    marker = state.markers[chosen]
    assert marker is not None
    run.report.release = chosen
    run.report.sha = marker.sha
    if not state.venvs.get(marker.lock_hash):
        raise DeployFailed(
            f"{run.name}: the venv of {chosen} ({marker.lock_hash}) is gone or incomplete",
            hint="deploy its commit again instead",
        )
    if chosen == live:
        run.say(f"{chosen} is already live")
        run.report.status = "rolled-back"
        return
    run.report.status = "rolled-back"
    live_ok = live is not None and state.live_marker is not None and live not in state.bad
    await go_live(
        run,
        chosen,
        marker.sha,
        _manifest_for(run, marker.sha, marker.sha, for_audit=True),
        previous=live,
        fallback=live if live_ok else None,
        event="rollback",
    )


# ---------------------------------------------------------------------------------------------
# per-host wrapper, rollout and the entry points the CLI calls


async def _on_host(
    ctx: DeployContext,
    name: str,
    report: HostReport,
    body: Callable[[HostRun], Awaitable[None]],
    *,
    locked: bool = True,
    before: Callable[[HostRun], Awaitable[None]] | None = None,
) -> HostReport:
    """Connect, start the host helper, run `before` (not yet locked), then `body` under the
    deploy lock (or without it: `locked=False`)."""
    start = time.monotonic()
    try:
        async with connected(ctx, name) as session, agent_for(session) as agent:
            run = HostRun(ctx, name, session, agent, report)
            if before is not None:
                await before(run)
            if locked:
                with run.phase("lock"):
                    lock = run.lock()
                    await lock.acquire()
                    run.lock_run_id = lock.owner.run_id
                try:
                    await body(run)
                    await _prepare_next(run)
                except BaseException:
                    # Cancelled (SIGINT/SIGTERM) or failed: let go, but keep the first error.
                    try:
                        await lock.release()
                    except GatebotError as exc:
                        report.notes.append(f"the lock could not be released: {exc}")
                    raise
                await lock.release()
            else:
                await body(run)
        report.ok = True
    except GatebotError as exc:
        report.ok = False
        if report.status not in ("auto-rolled-back",):
            report.status = "failed"
        report.error = str(exc)
        report.error_type = type(exc).__name__
        report.exit_code = exc.exit_code
        ctx.reporter.line(name, f"FAILED: {exc}")
    finally:
        report.duration_s = round(time.monotonic() - start, 4)
        _record(ctx, report)
    return report


# A release went live (or stayed live): worth preparing the next seed from it.
_LIVE_STATUSES = ("deployed", "switched", "already-live", "rolled-back", "auto-rolled-back")


async def _prepare_next(run: HostRun) -> None:
    """Start the host preparing the next release's seed from the live one, in the background
    (`deploy.<target>.prepare_next`), so the next deploy does not link every file first."""
    live = run.report.live
    if not run.target.prepare_next or live is None or run.report.status not in _LIVE_STATUSES:
        return
    shared = tuple(posixpath.normpath(s) for s in run.target.shared)
    try:
        await prepare_next(run.agent, run.layout.release(live), (*RELEASE_MANAGED, *shared))
    except GatebotError as exc:
        # What this run was for is done; the next deploy just seeds as usual.
        run.report.notes.append(f"the next release's seed was not prepared: {exc}")


def _record(ctx: DeployContext, report: HostReport) -> None:
    if ctx.cache_dir is None or report.status == "dry-run":
        return
    record = {
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
    try:
        from bot.metrics.history import record_deploy

        record_deploy(ctx.cache_dir, record, ctx.config.metrics)
    except (NotImplementedError, OSError, ValueError, ImportError) as exc:
        ctx.reporter.warn(f"could not record the run in the history: {exc}")


async def rollout(
    names: list[str],
    one: Callable[[str], Awaitable[HostReport]],
    policy: RolloutConfig,
    reporter: Reporter,
    op: str,
) -> list[HostReport]:
    """Batches of `policy.batch_size` in parallel; stop once failures exceed the percentage."""
    reports: list[HostReport] = []
    failed = 0
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


async def deploy(
    ctx: DeployContext,
    names: list[str],
    manifest: Manifest | Callable[[], Manifest],
    *,
    dry_run: bool = False,
) -> RolloutReport:
    """Release `manifest` to `names`. Given a function that builds it instead, the function
    runs in a thread while the hosts are connected to (reading a 10,000-file tree from git
    takes about as long as opening the SSH connection and starting the host helper); a host
    takes its lock only once the manifest is there, and an error building it fails the hosts
    without touching them."""
    if isinstance(manifest, Manifest):
        job: asyncio.Future[Manifest] = asyncio.get_running_loop().create_future()
        job.set_result(manifest)
    else:
        job = asyncio.ensure_future(asyncio.to_thread(manifest))
    held: dict[str, Manifest] = {}

    async def resolve(run: HostRun) -> None:
        m = await job
        run.report.ref, run.report.sha = m.ref, m.sha
        held[run.name] = m

    async def one(name: str) -> HostReport:
        report = HostReport(target=name, op="deploy")
        if dry_run:
            return await _on_host(
                ctx, name, report, lambda r: _dry_run(r, held[name]), locked=False, before=resolve
            )
        return await _on_host(
            ctx, name, report, lambda r: _deploy_locked(r, held[name]), before=resolve
        )

    try:
        reports = await rollout(names, one, ctx.config.deploy.rollout, ctx.reporter, "deploy")
    finally:
        if not job.done():
            job.cancel()  # no host got as far as needing it (or the run was cancelled)
    if not job.cancelled() and job.exception() is None:
        built = job.result()
        for r in reports:  # hosts the rollout skipped never resolved it themselves
            r.ref, r.sha = r.ref or built.ref, r.sha or built.sha
    return RolloutReport(op="deploy", ok=all(r.ok for r in reports), hosts=reports)


async def rollback(ctx: DeployContext, names: list[str], to: str | None) -> RolloutReport:
    if to is not None and len(names) > 1:
        raise UsageError("--to names a release of one host; roll back one target at a time")

    async def one(name: str) -> HostReport:
        report = HostReport(target=name, op="rollback")
        return await _on_host(ctx, name, report, lambda r: _rollback_locked(r, to))

    reports = await rollout(names, one, ctx.config.deploy.rollout, ctx.reporter, "rollback")
    return RolloutReport(op="rollback", ok=all(r.ok for r in reports), hosts=reports)


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


@dataclass(frozen=True)
class ReleaseRow:
    release: str
    sha: str
    live: bool
    bad: bool
    complete: bool
    created: str
    lock_hash: str


async def list_releases(ctx: DeployContext, name: str) -> tuple[list[ReleaseRow], RemoteState]:
    async with connected(ctx, name) as session, agent_for(session) as agent:
        state = await read_state(agent, RemoteLayout(session.target.path))
    bad = state.bad
    rows = []
    for rid in reversed(sorted_releases(state.markers)):
        m = state.markers[rid]
        rows.append(
            ReleaseRow(
                release=rid,
                sha=m.sha if m else "",
                live=rid == state.live,
                bad=rid in bad,
                complete=m is not None,
                created=m.created_at if m else "",
                lock_hash=m.lock_hash if m else "",
            )
        )
    return rows, state


async def unlock(ctx: DeployContext, name: str, owner: str | None, force: bool) -> str:
    """Remove a lock left by a dead deploy: only when `owner` names its run id, or `force`."""
    if not force and not owner:
        raise UsageError("say whose lock to remove: --owner RUN_ID, or --force")
    async with connected(ctx, name) as session, agent_for(session) as agent:
        layout = RemoteLayout(session.target.path)
        found = await release_lock(agent, layout, "*" if force else str(owner))
        state = found.get("state")
        who = LockOwner.from_json(found.get("owner"))
        if state == "absent":
            return f"{name}: not locked"
        if state == "other":
            desc = who.describe() if who else "an unknown owner"
            raise LockHeld(
                f"{name}: the lock is held by {desc}, not by {owner}; left in place",
                hint=f"gatebot unlock --target {name} --owner {who.run_id if who else '?'}",
            )
        desc = who.describe() if who else "an unknown owner"
        await deploy_log.append_event(
            agent,
            layout,
            deploy_log.make_event(
                "unlock", detail=f"removed the lock of {desc}", run_id=ctx.run_id or None
            ),
        )
        return f"{name}: removed the lock of {desc}"
