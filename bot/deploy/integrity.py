"""Remote integrity: hash a release ON THE HOST and compare it with the manifest.

A small Python program (agent_script.py), run by the host's interpreter over SSH, walks the release
without following symlinks and prints, for each file, its git mode and git blob id (sha1 over
`blob <size>\\0` + content; for a symlink, over the link target string). Nothing is read back
locally: only ids travel. Excluded paths (the release's `.venv`, its marker, shared entries; see
`layout.integrity_excludes`) are skipped, and extra bytecode caches (`__pycache__/*.pyc`, which
a running service writes) are not reported unless `ignore_extra=None`.

    result = await verify_remote(session, layout.release(rid), manifest, integrity_excludes(shared))
    if not result.ok: ... result.missing / result.changed / result.extra
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import StrictInt, StrictStr, TypeAdapter, ValidationError

from bot.audit.remote import RemoteTimeout, run_bounded, shell_join
from bot.deploy.agent import Agent, agent_source
from bot.deploy.layout import is_bytecode_cache, is_excluded
from bot.deploy.manifest import Manifest
from bot.errors import TransportError
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
    # it already knew for their unchanged inode (see agent_script.op_verify_hash).
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
    excl = tuple(exclude)
    missing: list[str] = []
    changed: list[str] = []
    for e in manifest:
        if is_excluded(e.path, excl):
            continue
        got = remote.get(e.path)
        if got is None:
            missing.append(e.path)
        elif got[0] != e.mode or got[1] != e.oid:
            changed.append(e.path)
    extra = [
        p
        for p in remote
        if manifest.get(p) is None
        and not is_excluded(p, excl)
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


_COUNTS: TypeAdapter[dict[str, int]] = TypeAdapter(dict[StrictStr, StrictInt])


async def _indexed_listing(
    session: SSHSession,
    agent: Agent,
    release_dir: str,
    excl: list[str],
    reuse: HashReuse,
    timeout: float,
    expect: str | None = None,
) -> tuple[Any, dict[str, int]]:
    """The agent's `verify_hash`: (the raw listing, or None when it has digest `expect`; the
    counts hashed / hashed_bytes / reused)."""
    answer = await agent.call(
        "verify_hash",
        wait=timeout,
        root=release_dir,
        excl=excl,
        trust=list(reuse.trust),
        record=reuse.record,
        written=reuse.written,
        expect=expect,
    )
    if not isinstance(answer, dict):
        raise TransportError(f"{session.name}: the host's hash answer is not an object")
    try:
        counts = _COUNTS.validate_python(answer.get("counts"))
    except ValidationError:
        raise TransportError(f"{session.name}: the host's hash counts are malformed") from None
    data = answer.get("listing")
    if expect is not None and answer.get("match") is True and data is None:
        return None, counts
    return data, counts


def _validated(session: SSHSession, release_dir: str, data: Any) -> dict[str, RemoteEntry]:
    try:
        return _LISTING.validate_python(data)
    except ValidationError as exc:
        # A broken or compromised host: its answer is never trusted into a comparison.
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise TransportError(
            f"{session.name}: the host's hash listing of {release_dir} is not "
            f"{{path: [mode, blob id, size]}} ({exc.error_count()} errors; at {where}: "
            f"{first['msg']})"
        ) from None


async def remote_hashes(
    session: SSHSession,
    release_dir: str,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
    agent: Agent | None = None,
    reuse: HashReuse | None = None,
) -> dict[str, RemoteEntry]:
    """{path: (mode, blob id, size)} of every file and symlink under `release_dir` on the host.

    Runs on the deploy's agent channel when given one, else as one command of its own, whose
    process group is killed on the host when it outlives `timeout` (the audit's run_bounded).
    `reuse` (agent only) lets the host skip reading files whose id it knows."""
    excl = list(exclude)
    if agent is not None and reuse is not None:
        data, _counts = await _indexed_listing(session, agent, release_dir, excl, reuse, timeout)
    elif agent is not None:
        data = await agent.call("hash", wait=timeout, root=release_dir, excl=excl)
    else:
        interp = python or session.target.python
        command = shell_join(
            [interp, "-S", "-c", agent_source(), "hash", release_dir, json.dumps(excl)]
        )
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
    return _validated(session, release_dir, data)


def _digest_of(manifest: Manifest, exclude: tuple[str, ...]) -> str:
    """Manifest.digest of the entries a check compares (agent_script.listing_digest)."""
    kept = tuple(e for e in manifest if not is_excluded(e.path, exclude))
    if len(kept) == len(manifest):
        return manifest.digest  # cached on the manifest, which the release marker records too
    return Manifest(manifest.sha, manifest.ref, kept).digest


async def verify_remote(
    session: SSHSession,
    release_dir: str,
    manifest: Manifest,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
    agent: Agent | None = None,
    ignore_extra: IgnoreExtra | None = is_bytecode_cache,
    reuse: HashReuse | None = None,
) -> IntegrityResult:
    """Hash `release_dir` on the host and compare it with `manifest` (see module doc and
    `compare` for `exclude` and `ignore_extra`, `remote_hashes` for `reuse`)."""
    excl = tuple(exclude)
    remote: dict[str, RemoteEntry] | None
    if agent is not None and reuse is not None:
        # Strict checks (every extra path counts) can be settled on the host by one digest.
        expect = _digest_of(manifest, excl) if ignore_extra is None else None
        data, counts = await _indexed_listing(
            session, agent, release_dir, list(excl), reuse, timeout, expect
        )
        remote = None if data is None else _validated(session, release_dir, data)
    else:
        remote = await remote_hashes(
            session, release_dir, excl, python=python, timeout=timeout, agent=agent
        )
        # The plain `hash` reads every file.
        hashed = [e for e in remote.values() if e[0] in (0o100644, 0o100755)]
        counts = {"hashed": len(hashed), "hashed_bytes": sum(e[2] for e in hashed), "reused": 0}
    result = (
        IntegrityResult((), (), ())
        if remote is None
        else compare(manifest, remote, excl, ignore_extra)
    )
    return dataclasses.replace(
        result,
        hashed_files=counts.get("hashed", 0),
        hashed_bytes=counts.get("hashed_bytes", 0),
        known_files=counts.get("reused", 0),
    )
