"""Remote integrity: hash a release ON THE HOST and compare it with the manifest.

The host program (bot/deploy/hostside/tree.py), run by the host's interpreter, walks the release
without following symlinks and prints, for each file, its git mode and git blob id (sha1 over
`blob <size>\\0` + content; for a symlink, over the link target string). Nothing is read back
locally: only ids travel. Excluded paths (the release's `.venv`, its marker, shared entries; see
`layout.integrity_excludes`) are skipped, and extra bytecode caches (`__pycache__/*.pyc`, which
a running service writes) are not reported unless `ignore_extra=None`.

    result = await check_release(agent, layout.release(rid), manifest, excludes, HashReuse())
    if not result.ok: ... result.missing / result.changed / result.extra

A deploy asks through its host agent (`check_release`, `host_hashes`: ids the host already
knows for unchanged inodes are reused); the audit, which has no agent, runs the host program's
one-shot `hash` command (`verify_remote`, `remote_hashes`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import StrictInt, StrictStr, TypeAdapter, ValidationError

from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.bundle import host_program
from bot.deploy.hostside.protocol import Verified, VerifyHash
from bot.deploy.layout import excluder, is_bytecode_cache
from bot.deploy.manifest import Manifest
from bot.errors import TransportError

if TYPE_CHECKING:
    from bot.ssh.session import SSHSession

RemoteEntry = tuple[int, str, int]  # (git mode, blob id, size); mode 0 = not a file or link
# Strict: a float, bool or numeric string from the host is a malformed answer, not a mode.
_LISTING: TypeAdapter[dict[str, RemoteEntry]] = TypeAdapter(
    dict[StrictStr, tuple[StrictInt, StrictStr, StrictInt]]
)


@dataclass(frozen=True)
class IntegrityResult:
    """Paths that differ between the manifest and the release on the host (each sorted)."""

    missing: tuple[str, ...]
    changed: tuple[str, ...]  # content or mode differs (or not a regular file/link)
    extra: tuple[str, ...]
    # How the host got the ids (a deploy's checks): files read and hashed, and files whose id
    # it already knew for their unchanged inode (see hostside/tree.op_verify_hash).
    hashed_files: int = 0
    hashed_bytes: int = 0
    known_files: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def summary(self, limit: int = 5) -> str:
        if self.ok:
            return "release matches the manifest"
        parts = []
        for label, paths in (
            ("missing", self.missing),
            ("changed", self.changed),
            ("extra", self.extra),
        ):
            if paths:
                shown = ", ".join(paths[:limit]) + (" ..." if len(paths) > limit else "")
                parts.append(f"{len(paths)} {label} ({shown})")
        return "; ".join(parts)


#: Which EXTRA paths (on the host, not in the tree) are expected rather than tampering.
IgnoreExtra = Callable[[str], bool]


def compare(
    manifest: Manifest,
    remote: dict[str, RemoteEntry],
    exclude: Iterable[str] = (),
    ignore_extra: IgnoreExtra | None = is_bytecode_cache,
) -> IntegrityResult:
    """Pure comparison of a manifest with the hashes the host reported.

    `exclude` paths are not compared at all. `ignore_extra` (default: bytecode caches, as the
    audit does) only drops paths the tree does not hold: a tracked `.pyc` that changed or is
    missing still counts. Pass None to see every extra file (building a release does)."""
    excluded = excluder(exclude)
    missing: list[str] = []
    changed: list[str] = []
    for e in manifest:
        if excluded(e.path):
            continue
        got = remote.get(e.path)
        if got is None:
            missing.append(e.path)
        elif got[0] != e.mode or got[1] != e.oid or got[2] != e.size:
            # A size the blob id does not have is the manifest's (a wrong remembered size,
            # bot/deploy/blobsizes.py): the host's listing never matches it either.
            changed.append(e.path)
    extra = [
        p
        for p in remote
        if manifest.get(p) is None
        and not excluded(p)
        and not (ignore_extra is not None and ignore_extra(p))
    ]
    return IntegrityResult(tuple(sorted(missing)), tuple(sorted(changed)), tuple(sorted(extra)))


@dataclass(frozen=True)
class HashReuse:
    """Which ids the host may reuse instead of reading files (a deploy's checks only).

    `trust`: index files of other checked releases (their hard-linked files share inodes);
    `record`: write this release's own index; `written`: reuse the ids of the files the agent
    hashed as it wrote them. HashReuse() with no trust and written=False reads every file."""

    trust: tuple[str, ...] = ()
    record: bool = False
    written: bool = True


async def _verify_hash(
    agent: HostAgent, release_dir: str, excl: list[str], reuse: HashReuse, expect: str | None
) -> Verified:
    try:
        return await agent.verify_hash(
            VerifyHash(release_dir, excl, list(reuse.trust), reuse.record, reuse.written, expect)
        )
    except AgentError as exc:
        raise TransportError(
            f"{agent.name}: hashing {release_dir} on the host failed: {exc}"
        ) from None


def _checked(name: str, release_dir: str, data: Any) -> dict[str, RemoteEntry]:
    try:
        return _LISTING.validate_python(data)
    except ValidationError as exc:
        # A broken or compromised host: its answer is never trusted into a comparison.
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise TransportError(
            f"{name}: the host's hash listing of {release_dir} is not "
            f"{{path: [mode, blob id, size]}} ({exc.error_count()} errors; at {where}: "
            f"{first['msg']})"
        ) from None


async def host_hashes(
    agent: HostAgent, release_dir: str, exclude: Iterable[str], reuse: HashReuse
) -> dict[str, RemoteEntry]:
    """{path: (mode, blob id, size)} of `release_dir` on the host, through the deploy's agent;
    `reuse` lets the host skip reading files whose id it knows."""
    answer = await _verify_hash(agent, release_dir, list(exclude), reuse, None)
    return dict(answer.listing or {})


async def check_release(
    agent: HostAgent,
    release_dir: str,
    manifest: Manifest,
    exclude: Iterable[str],
    reuse: HashReuse,
    *,
    ignore_extra: IgnoreExtra | None = is_bytecode_cache,
) -> IntegrityResult:
    """Hash `release_dir` on the host through the deploy's agent and compare it with
    `manifest` (`compare` for `exclude` and `ignore_extra`). A strict check (ignore_extra=None:
    every extra path counts) is settled on the host by one digest when the release matches."""
    excl = tuple(exclude)
    expect = _digest_of(manifest, excl) if ignore_extra is None else None
    answer = await _verify_hash(agent, release_dir, list(excl), reuse, expect)
    result = (
        IntegrityResult((), (), ())
        if answer.match and answer.listing is None
        else compare(manifest, dict(answer.listing or {}), excl, ignore_extra)
    )
    return dataclasses.replace(
        result,
        hashed_files=answer.hashed,
        hashed_bytes=answer.hashed_bytes,
        known_files=answer.reused,
    )


def _digest_of(manifest: Manifest, exclude: tuple[str, ...]) -> str:
    """Manifest.digest of the entries a check compares (hostside/tree.listing_digest)."""
    excluded = excluder(exclude)
    kept = tuple(e for e in manifest if not excluded(e.path))
    if len(kept) == len(manifest):
        return manifest.digest  # cached on the manifest, which the release marker records too
    return Manifest(manifest.sha, manifest.ref, kept).digest


async def remote_hashes(
    session: SSHSession,
    release_dir: str,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
) -> dict[str, RemoteEntry]:
    """{path: (mode, blob id, size)} of every file and symlink under `release_dir` on the host,
    without a deploy's agent (the audit): the host program's one-shot `hash` command, whose
    process group is killed on the host when it outlives `timeout` (bot/ssh/remote.py)."""
    # Imported here: the audit's asyncssh session; a deploy checks through its host agent.
    from bot.ssh.remote import RemoteTimeout, run_bounded
    from bot.ssh.session import quote

    excl = list(exclude)
    interp = python or session.target.python
    command = quote([interp, "-S", "-c", host_program(), "hash", release_dir, json.dumps(excl)])
    try:
        res = await run_bounded(session, command, timeout=timeout)
    except RemoteTimeout as exc:
        note = "it was killed" if exc.killed else "it could not be killed"
        raise TransportError(
            f"{session.name}: hashing {release_dir} on the host timed out after "
            f"{exc.seconds:.0f}s; {note}"
        ) from None
    if not res.ok:
        raise TransportError(
            f"{session.name}: hashing {release_dir} on the host failed ({res.exit_status}): "
            f"{res.stderr.strip()[-400:]}"
        )
    # Login files of some shells print first: the listing is the last line.
    lines = res.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1] if lines else "")
    except (json.JSONDecodeError, RecursionError):
        raise TransportError(f"{session.name}: the host's hash listing is not JSON") from None
    return _checked(session.name, release_dir, data)


async def verify_remote(
    session: SSHSession,
    release_dir: str,
    manifest: Manifest,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
    ignore_extra: IgnoreExtra | None = is_bytecode_cache,
) -> IntegrityResult:
    """Hash `release_dir` on the host (`remote_hashes`, every file read) and compare it with
    `manifest` (see `compare` for `exclude` and `ignore_extra`)."""
    excl = tuple(exclude)
    remote = await remote_hashes(session, release_dir, excl, python=python, timeout=timeout)
    hashed = [e for e in remote.values() if e[0] in (0o100644, 0o100755)]
    return dataclasses.replace(
        compare(manifest, remote, excl, ignore_extra),
        hashed_files=len(hashed),
        hashed_bytes=sum(e[2] for e in hashed),
    )
