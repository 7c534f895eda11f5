"""Making the files of a new release: seed with hard links, then send only what changed.

1. Seed: the new release is made of hard links to the live one (no data copied), without the
   managed entries (.venv, marker) and shared links that belong to the old release.
2. Plan: compare the new manifest with what the seed holds (the old release's manifest when its
   commit is in the local repository, else the host's own hashes of the seeded tree).
3. Send: ONE tar stream on the deploy's one agent channel (framed, see agent.py). The first
   member is a control file listing paths to delete; then one member per changed blob. The
   host side (op_extract in agent_script.py) writes each member to a temp
   name in the target directory and renames it into place, so a hard-linked file shared with an
   older release is never modified in place (a mode change is a new file too). Modes and symlinks
   travel as tar metadata; path components that are symlinks or files are replaced, never
   followed, so nothing can be written outside the release.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pygit2

from bot.deploy.agent import Agent, AgentError, Send
from bot.deploy.manifest import Manifest, ManifestEntry, read_blob
from bot.errors import DeployFailed, TransportError

CONTROL_MEMBER = ".gatebot-transfer-control.json"
_FLUSH_AT = 1 << 20  # bytes buffered before a write to the channel
_BLOCK = tarfile.BLOCKSIZE

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
    stream_bytes_sent: int = 0  # what went into the channel (tar headers and padding included)
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
    agent: Agent, live_dir: str | None, new_dir: str, drop: tuple[str, ...]
) -> None:
    """Create `new_dir`, hard-linked from `live_dir` when there is one; remove `drop` entries."""
    try:
        await agent.call("seed", wait=600, live=live_dir, new=new_dir, drop=list(drop))
    except AgentError as exc:
        raise DeployFailed(
            f"{agent.session.name}: seeding {new_dir} from the live release failed: {exc}",
            hint="releases/ must be on a filesystem that supports hard links",
        ) from None


def _tar_header(entry: ManifestEntry, size: int) -> bytes:
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0  # content-addressed: times carry no meaning and would break reproducibility
    if entry.is_link:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target or ""
        info.mode = 0o777
        info.size = 0
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if entry.executable else 0o644
        info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _control_member(delete: tuple[str, ...]) -> bytes:
    data = json.dumps({"delete": list(delete)}).encode("utf-8")
    info = tarfile.TarInfo(CONTROL_MEMBER)
    info.size = len(data)
    info.mode = 0o600
    return info.tobuf(format=tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % _BLOCK)


async def send_changes(
    agent: Agent,
    release_dir: str,
    repo: pygit2.Repository,
    plan: TransferPlan,
    *,
    on_bytes: Callable[[int], None] | None = None,
    timeout: float = 3600.0,
    fresh: bool = False,
) -> TransferStats:
    """Stream the plan's blobs (and deletions) into `release_dir` on the agent's channel.
    `fresh`: the directory was not seeded, so no file can be there yet (no temp + rename)."""
    stats = TransferStats()
    start = time.monotonic()
    name = agent.session.name

    async def produce(send: Send) -> None:
        buf = bytearray()

        async def flush() -> None:
            if buf:
                await send(bytes(buf))
                stats.stream_bytes_sent += len(buf)
                if on_bytes is not None:
                    on_bytes(len(buf))
                buf.clear()

        buf += _control_member(plan.delete)
        for entry in plan.send:
            data = b"" if entry.is_link else read_blob(repo, entry.oid)
            buf += _tar_header(entry, len(data))
            if data:
                # Big blobs go through in slices: memory stays one blob plus the buffer.
                view = memoryview(data)
                for i in range(0, len(view), _FLUSH_AT):
                    buf += view[i : i + _FLUSH_AT]
                    if len(buf) >= _FLUSH_AT:
                        await flush()
                buf += b"\0" * (-len(data) % _BLOCK)
            if len(buf) >= _FLUSH_AT:
                await flush()
            stats.files_sent += 1
            stats.content_bytes_sent += len(data)
        buf += b"\0" * (2 * _BLOCK)
        await flush()

    try:
        out = await agent.stream(
            "extract",
            produce,
            wait=timeout,
            root=release_dir,
            control=CONTROL_MEMBER,
            fresh=fresh,
        )
    except TransportError as exc:
        raise TransportError(
            f"{name}: the upload was cut after {stats.stream_bytes_sent} bytes: {exc.message}",
            hint="nothing went live; `current` is unchanged. Run the deploy again.",
        ) from None
    except AgentError as exc:
        raise DeployFailed(f"{name}: unpacking the upload on the host failed: {exc}") from None
    stats.seconds = time.monotonic() - start
    stats.files_deleted = int(out["deleted"])
    stats.extra["written"] = int(out["written"])
    return stats
