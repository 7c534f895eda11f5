"""Making the files of a new release: seed with hard links, then send only what changed.

1. Seed: the new release is made of hard links to the live one (no data copied), without the
   managed entries (.venv, marker) and shared links that belong to the old release.
2. Plan: compare the new manifest with what the seed holds (the old release's manifest when its
   commit is in the local repository, else the host's own hashes of the seeded tree).
3. Send: ONE stream on the deploy's one agent channel (framed, see hostside/protocol.py): a
   record listing paths to delete, then one record per changed blob or symlink (kind, mode,
   size, path, then the bytes; no padding). The host side (hostside/upload.py) creates a path that
   is not there directly and replaces one that is through a temp name renamed into place, so a
   hard-linked file shared with an older release is never modified in place (a mode change is
   a new file too). Path components that are symlinks or files are replaced, never followed,
   so nothing can be written outside the release. It hashes each file from the bytes it
   writes, which the check before going live reuses (integrity.HashReuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.deploy import stream
from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import Extract, PrepareNext, Seed
from bot.deploy.manifest import Manifest, ManifestEntry
from bot.errors import DeployFailed, TransportError

if TYPE_CHECKING:
    import pygit2

OldEntries = Mapping[str, tuple[int, str]]  # path -> (git mode, blob id)


@dataclass(frozen=True)
class TransferPlan:
    send: tuple[ManifestEntry, ...]
    delete: tuple[str, ...]
    reused_files: int
    reused_bytes: int

    @property
    def send_bytes(self) -> int:
        return sum(e.size for e in self.send)

    @property
    def empty(self) -> bool:
        return not self.send and not self.delete


@dataclass
class TransferStats:
    files_sent: int = 0
    content_bytes_sent: int = 0  # file contents only
    stream_bytes_sent: int = 0  # what went into the channel (record headers included)
    files_deleted: int = 0
    seconds: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


def plan_transfer(new: Manifest, old: OldEntries | None) -> TransferPlan:
    """What to send and delete so a tree holding `old` becomes `new` (pure)."""
    if old is None:
        return TransferPlan(tuple(new.entries), (), 0, 0)
    send: list[ManifestEntry] = []
    reused_files = reused_bytes = 0
    for e in new:
        have = old.get(e.path)
        # Mode counts: chmod on a hard link would change the older release's file too.
        if have is not None and have == (e.mode, e.oid):
            reused_files += 1
            reused_bytes += e.size
        else:
            send.append(e)
    delete = tuple(sorted(p for p in old if new.get(p) is None))
    return TransferPlan(tuple(send), delete, reused_files, reused_bytes)


async def seed_release(
    agent: HostAgent,
    live_dir: str | None,
    new_dir: str,
    drop: tuple[str, ...],
    *,
    standby: bool = False,
) -> bool:
    """Create `new_dir`, hard-linked from `live_dir` when there is one; remove `drop` entries.
    `standby`: take the seed prepared ahead for `live_dir` when it is ready (see
    `prepare_next`). True when it was taken."""
    try:
        res = await agent.seed(Seed(live_dir, new_dir, list(drop), standby))
    except AgentError as exc:
        raise DeployFailed(
            f"{agent.name}: seeding {new_dir} from the live release failed: {exc}",
            hint="releases/ must be on a filesystem that supports hard links",
        ) from None
    return res.standby


async def prepare_next(agent: HostAgent, live_dir: str, drop: tuple[str, ...]) -> bool:
    """Ask the host to prepare the next release's seed from `live_dir` in the background (a
    detached process; the call returns at once). True when one was started."""
    try:
        res = await agent.prepare_next(PrepareNext(live_dir, list(drop)))
    except AgentError:
        return False  # an optimisation only: the next deploy seeds as usual
    return res.started


async def send_changes(
    agent: HostAgent,
    release_dir: str,
    repo: pygit2.Repository,
    plan: TransferPlan,
    *,
    on_bytes: Callable[[int], None] | None = None,
    fresh: bool = False,
) -> TransferStats:
    """Stream the plan's blobs (and deletions) into `release_dir` on the agent's channel.
    `fresh`: the directory was not seeded, so no file can be there yet (no temp + rename)."""
    stats = TransferStats()
    start = time.monotonic()
    name = agent.name

    def sent(n: int) -> None:
        stats.stream_bytes_sent += n
        if on_bytes is not None:
            on_bytes(n)

    try:
        chunks = stream.chunks(repo, plan.delete, plan.send)
        out = await agent.extract(Extract(release_dir, fresh), chunks, sent)
    except TransportError as exc:
        raise TransportError(
            f"{name}: the upload was cut after {stats.stream_bytes_sent} bytes: {exc.message}",
            hint="nothing went live; `current` is unchanged. Run the deploy again.",
        ) from None
    except AgentError as exc:
        raise DeployFailed(f"{name}: unpacking the upload on the host failed: {exc}") from None
    stats.files_sent = len(plan.send)
    stats.content_bytes_sent = sum(e.size for e in plan.send if not e.is_link)
    stats.seconds = time.monotonic() - start
    stats.files_deleted = out.deleted
    stats.extra["written"] = out.written
    return stats
