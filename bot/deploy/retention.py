"""Retention: keep the newest `keep_releases` complete releases, never the live one or the
previous good one (the rollback target); remove incomplete leftovers of cut deploys and the venvs
no kept release uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import Remove
from bot.deploy.layout import RemoteLayout, sorted_releases
from bot.deploy.state import ReleaseMarker
from bot.errors import TransportError


@dataclass(frozen=True)
class PrunePlan:
    releases: tuple[str, ...]
    venvs: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.releases and not self.venvs


def plan_prune(
    markers: Mapping[str, ReleaseMarker | None],
    venvs: Mapping[str, bool],
    *,
    keep: int,
    live: str | None,
    previous_good: str | None,
    in_progress: str | None = None,
) -> PrunePlan:
    """Pure: which releases and venvs to delete. The caller holds the deploy lock, so any
    incomplete release other than `in_progress` is the leftover of a cut deploy."""
    complete = sorted_releases(r for r, m in markers.items() if m is not None)
    protected = {r for r in (live, previous_good, in_progress) if r}
    kept = set(complete[-keep:]) | protected
    doomed = tuple(sorted_releases(r for r in markers if r not in kept))
    used = {m.lock_hash for r, m in markers.items() if r in kept and m is not None}
    if in_progress is not None and markers.get(in_progress) is None:
        # Its venv is not in a marker yet; keep everything complete rather than guess.
        used |= {h for h, ok in venvs.items() if ok}
    dead_venvs = tuple(sorted(h for h in venvs if h not in used))
    return PrunePlan(doomed, dead_venvs)


async def apply_prune(agent: HostAgent, layout: RemoteLayout, plan: PrunePlan) -> None:
    paths = [p for r in plan.releases for p in layout.owned_by(r)]
    paths += [layout.venv(h) for h in plan.venvs]
    if paths:
        # Removal never follows the .venv or shared symlinks inside a release. The directories
        # are set aside at once and deleted by a detached host process: off the deploy's time.
        try:
            await agent.remove(Remove(paths, background=True))
        except AgentError as exc:
            raise TransportError(f"{agent.name}: pruning failed: {exc}") from None
