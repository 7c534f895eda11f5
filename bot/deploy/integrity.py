"""Remote integrity: hash a release ON THE HOST and compare it with the manifest.

A small Python program (agent_script.py), run by the host's interpreter over SSH, walks the release
without following symlinks and prints, for each file, its git mode and git blob id (sha1 over
`blob <size>\\0` + content; for a symlink, over the link target string). Nothing is read back
locally: only ids travel. Excluded paths (the release's `.venv`, its marker, shared entries; see
`layout.integrity_excludes`) are skipped.

    result = await verify_remote(session, layout.release(rid), manifest, integrity_excludes(shared))
    if not result.ok: ... result.missing / result.changed / result.extra
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from bot.deploy.agent import Agent, agent_source
from bot.deploy.layout import is_excluded
from bot.deploy.manifest import Manifest
from bot.errors import TransportError
from bot.ssh.session import SSHSession

RemoteEntry = tuple[int, str, int]  # (git mode, blob id, size); mode 0 = not a file or link


@dataclass(frozen=True)
class IntegrityResult:
    """Paths that differ between the manifest and the release on the host (each sorted)."""

    missing: tuple[str, ...]
    changed: tuple[str, ...]  # content or mode differs (or not a regular file/link)
    extra: tuple[str, ...]

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


def compare(
    manifest: Manifest, remote: dict[str, RemoteEntry], exclude: Iterable[str] = ()
) -> IntegrityResult:
    """Pure comparison of a manifest with the hashes the host reported."""
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
    extra = [p for p in remote if manifest.get(p) is None and not is_excluded(p, excl)]
    return IntegrityResult(tuple(sorted(missing)), tuple(sorted(changed)), tuple(sorted(extra)))


async def remote_hashes(
    session: SSHSession,
    release_dir: str,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
    agent: Agent | None = None,
) -> dict[str, RemoteEntry]:
    """{path: (mode, blob id, size)} of every file and symlink under `release_dir` on the host.

    Runs on the deploy's agent channel when given one, else as one command of its own."""
    excl = list(exclude)
    if agent is not None:
        data = await agent.call("hash", wait=timeout, root=release_dir, excl=excl)
    else:
        interp = python or session.target.python
        res = await session.run(
            [interp, "-S", "-c", agent_source(), "hash", release_dir, json.dumps(excl)],
            timeout=timeout,
        )
        if not res.ok:
            raise TransportError(
                f"{session.name}: hashing {release_dir} on the host failed ({res.exit_status}): "
                f"{res.stderr.strip()[-400:]}"
            )
        try:
            data = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise TransportError(f"{session.name}: the host's hash listing is not JSON") from None
    return {str(p): (int(v[0]), str(v[1]), int(v[2])) for p, v in data.items()}


async def verify_remote(
    session: SSHSession,
    release_dir: str,
    manifest: Manifest,
    exclude: Iterable[str] = (),
    *,
    python: str | None = None,
    timeout: float = 300.0,
    agent: Agent | None = None,
) -> IntegrityResult:
    """Hash `release_dir` on the host and compare it with `manifest` (see module doc)."""
    excl = tuple(exclude)
    remote = await remote_hashes(
        session,
        release_dir,
        excl,
        python=python,
        timeout=timeout,
        agent=agent,
    )
    return compare(manifest, remote, excl)
