"""Step `build`: make releases/<id> complete on the host, without touching `current`.

seed (hard links to the live release) → plan (what the seed lacks, from git when the live
commit is local, else from the host's hashes) → upload (one stream of the changed blobs) →
shared links → venv (one per lock-file hash, created on the host while the upload runs, then the
install) → check against the git tree (drift in the seed is sent again, once) → completion
marker, written last. A failed upload removes its half-written release; any failure leaves
`current` where it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bot.deploy import blobsizes
from bot.deploy.host.base import AgentError
from bot.deploy.hostside.protocol import Link, Remove, WriteFile
from bot.deploy.integrity import IntegrityResult, check_release, host_hashes
from bot.deploy.layout import (
    RELEASE_MANAGED,
    RELEASE_MARKER,
    excluder,
    integrity_excludes,
    lock_hash,
    shared_link_target,
)
from bot.deploy.manifest import Manifest, old_entries_from_diff, read_blob
from bot.deploy.state import ReleaseMarker, RemoteState
from bot.deploy.steps import envfile
from bot.deploy.steps.base import HostRun, overlapped, preload_history
from bot.deploy.steps.plan import count_hashing, hash_reuse
from bot.deploy.transfer import OldEntries, TransferPlan, plan_transfer, seed_release, send_changes
from bot.deploy.venv import ensure_venv, start_venv
from bot.errors import DeployFailed, GatebotError, UsageError

if TYPE_CHECKING:
    import pygit2


@dataclass(frozen=True)
class Built:
    release: str
    lock_hash: str
    venv_created: bool
    from_standby: bool  # the seed prepared after the last deploy was taken


def shared_of(run: HostRun) -> tuple[str, ...]:
    return tuple(posixpath.normpath(s) for s in run.target.shared)


def linked_of(run: HostRun) -> tuple[str, ...]:
    """What gatebot links into each release (shared entries, the env file): never seeded,
    uploaded or compared with the tree."""
    return run.target.linked()


def git_old_entries(
    run: HostRun, state: RemoteState, deployed: Manifest, shared: tuple[str, ...]
) -> OldEntries | None:
    """What the live release holds, from git: only when its commit is in the local repository.
    A diff of the two trees (libgit2 skips subtrees whose ids are equal) names what changed;
    every other path holds what the new tree holds. The host's check before going live finds
    anything else (a file edited by hand) and the deploy sends it again."""
    from bot.git.diff import open_repo

    marker = state.live_marker
    if marker is None or run.ctx.repo_path is None:
        return None
    try:
        return old_entries_from_diff(
            open_repo(Path(run.ctx.repo_path)), marker.sha, deployed, shared
        )
    except (UsageError, DeployFailed):
        return None


async def old_entries(
    run: HostRun, state: RemoteState, release_dir: str, deployed: Manifest, shared: tuple[str, ...]
) -> OldEntries | None:
    """What the (seeded) release holds: from git when possible (no remote read), else from
    the host's own hashes of it."""
    if state.live_marker is None:
        return None
    found = git_old_entries(run, state, deployed, shared)
    if found is not None:
        return found
    # The seed's files are the live release's inodes: its index saves reading them (a shallow
    # clone that lacks the live commit would otherwise have the host read the whole tree).
    reuse = dataclasses.replace(hash_reuse(run, state.live), record=False, written=False)
    hashes = await host_hashes(run.agent, release_dir, integrity_excludes(linked_of(run)), reuse)
    return {p: (m, o) for p, (m, o, _s) in hashes.items()}


async def _send(
    run: HostRun, release_dir: str, repo: pygit2.Repository, plan: TransferPlan, fresh: bool
) -> None:
    advance = run.ctx.reporter.upload(run.name, plan.send_bytes, len(plan.send))
    try:
        stats = await send_changes(
            run.agent, release_dir, repo, plan, on_bytes=advance, fresh=fresh
        )
    finally:
        run.ctx.reporter.upload_done(run.name)
    run.counts.files_sent += stats.files_sent
    run.counts.bytes_sent += stats.stream_bytes_sent
    run.counts.content_bytes_sent += stats.content_bytes_sent
    run.counts.files_deleted += stats.files_deleted


async def _drop_cut_release(run: HostRun, state: RemoteState, release_id: str) -> None:
    """Remove the release directory a failed upload left half written (a full disk keeps its
    space otherwise, and the next deploy fails the same way). Never the live release or a
    complete one; over a dead connection it stays for retention to remove."""
    if release_id == state.live or state.markers.get(release_id) is not None:
        return
    try:
        await run.agent.remove(Remove([run.layout.release(release_id)]))
    except (AgentError, GatebotError) as exc:
        run.notes.append(
            f"the cut release {release_id} stays on the host for retention to remove: {exc}"
        )
        return
    run.say(f"removed the cut release {release_id}")


async def _link_shared(run: HostRun, release_dir: str, shared: tuple[str, ...]) -> None:
    for name in shared:
        link = Link(
            posixpath.join(release_dir, name),
            shared_link_target(name),
            run.layout.shared_entry(name),
        )
        try:
            await run.agent.link(link)
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: linking shared entry {name!r} failed: {exc}") from None


async def _check(
    run: HostRun, release_dir: str, deployed: Manifest, seeded_from: str | None
) -> IntegrityResult:
    # Strict (ignore_extra=None): a new release holds exactly the tree, so bytecode caches
    # the seed carried over from the live release are removed by the repair.
    found = await check_release(
        run.agent,
        release_dir,
        deployed,
        integrity_excludes(linked_of(run)),
        hash_reuse(run, seeded_from),
        ignore_extra=None,
    )
    count_hashing(run, found)
    return found


def _local(manifest: Manifest, lock_file: str | None) -> tuple[pygit2.Repository, str]:
    """The repository (pygit2 imported here, ~40 ms the first time) and the lock-file hash."""
    from bot.git.diff import open_repo

    repo = open_repo(Path(manifest.repo_path))
    lock_entry = manifest.get(lock_file) if lock_file else None
    return repo, lock_hash(read_blob(repo, lock_entry.oid) if lock_entry else None)


async def build(run: HostRun) -> None:
    assert run.plan is not None and run.manifest is not None
    manifest, state, release_id = run.manifest, run.plan.state, run.plan.release
    target, shared = run.target, linked_of(run)
    deployed = manifest.without(shared)
    release_dir = run.layout.release(release_id)
    live = state.live if state.live_marker is not None else None
    managed = excluder(RELEASE_MANAGED)
    reserved = [e.path for e in deployed if managed(e.path)]
    if reserved:
        # Uploaded like any file (the tree is deployed as committed), then replaced by gatebot's
        # own: a committed marker never names this release, so it never makes it complete
        # (state._marker), even when the deploy is cut before gatebot writes the real one.
        run.note(
            f"the tree holds gatebot's bookkeeping names ({', '.join(reserved)}): they are "
            "replaced by gatebot's own and never count as this release's marker or venv"
        )

    with run.phase("seed"):
        # The host links the seed while we open the repository and read the live release's
        # tree from git.
        seeding = asyncio.gather(
            seed_release(
                run.agent,
                run.layout.release(live) if live else None,
                release_dir,
                (*RELEASE_MANAGED, *shared),
                standby=target.prepare_next,
            ),
            asyncio.to_thread(git_old_entries, run, state, deployed, shared),
        )
        try:
            (from_standby, old), (repo, lh) = await overlapped(
                seeding, lambda: _local(manifest, target.lock_file)
            )
        except GatebotError:
            # The lock file's blob missing from a broken local repository: the seed was
            # made meanwhile, and goes again.
            await _drop_cut_release(run, state, release_id)
            raise
    if from_standby:
        run.say(f"seeded from the copy of {live} prepared after the last deploy")
    with run.phase("plan"):
        if old is None and live is not None:
            old = await old_entries(run, state, release_dir, deployed, shared)
        plan = plan_transfer(deployed, old)
    run.counts.files_reused += plan.reused_files
    run.counts.bytes_reused += plan.reused_bytes
    run.say(
        f"{len(plan.send)} files to send ({plan.send_bytes} bytes), {len(plan.delete)} to "
        f"delete, {plan.reused_files} reused"
    )
    if not plan.empty:
        with run.phase("upload"):
            try:
                if not state.venvs.get(lh, False):
                    # `python -m venv` (and ensurepip) runs on the host while the files arrive.
                    await start_venv(run.agent, run.layout, target, lh)
                await _send(run, release_dir, repo, plan, fresh=live is None)
            except GatebotError:
                await _drop_cut_release(run, state, release_id)
                raise
    if target.env is not None and manifest.get(target.env.file) is not None:
        run.note(
            f"the tree's {target.env.file} is not deployed: deploy.targets.{run.name}.env.file "
            "links the release's environment file there"
        )
    with run.phase("shared"):
        await _link_shared(run, release_dir, shared_of(run))
    with run.phase("venv"):
        venv = await ensure_venv(
            run.agent, run.layout, target, lh, release_dir, complete=state.venvs.get(lh, False)
        )
    with run.phase("verify"):
        # The host reads the release while this process loads what the end of the run needs.
        check, _ = await overlapped(_check(run, release_dir, deployed, live), preload_history)
        if not check.ok:
            wanted = {*check.missing, *check.changed}
            again = tuple(e for e in deployed if e.path in wanted)
            blobsizes.check_sizes(repo, again)  # not drift: a wrong remembered size
            # The seed carried files edited on the host: send those again, once.
            run.say(f"repairing drift in the seeded tree: {check.summary()}")
            fix = TransferPlan(again, check.extra, 0, 0)
            await _send(run, release_dir, repo, fix, fresh=False)
            check = await _check(run, release_dir, deployed, live)
        if not check.ok:
            raise DeployFailed(
                f"{run.name}: {release_id} does not match the git tree after upload: "
                f"{check.summary()}; nothing went live"
            )
    if target.env is not None:
        await envfile.write(run)  # before the marker: a complete release has its environment
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
        path = posixpath.join(release_dir, RELEASE_MARKER)
        try:
            await run.agent.write_file(WriteFile(path, marker.model_dump_json(), True))
        except AgentError as exc:
            raise DeployFailed(f"{run.name}: writing the completion marker failed: {exc}") from None
        await run.log("release", release=release_id, sha=manifest.sha, previous=state.live)
    run.built = Built(release_id, lh, venv.created, from_standby)
