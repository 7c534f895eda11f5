"""What is on the host right now, read in ONE round trip: current, releases, venvs, lock, log.

The host side is `op_inspect` in bot/deploy/hostside/fsops.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.deploy import log as deploy_log
from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import Inspect
from bot.deploy.layout import (
    RELEASE_ID_RE,
    RemoteLayout,
    is_release_id,
    release_id_from_link,
    sorted_releases,
)
from bot.deploy.lock import LockOwner
from bot.errors import TransportError


class ReleaseMarker(BaseModel):
    """`<release>/.gatebot-release.json`, written last: present = the release is complete."""

    model_config = ConfigDict(extra="allow")

    release: str
    sha: str
    ref: str = ""
    lock_hash: str
    manifest_digest: str
    files: int
    created_at: str


@dataclass
class RemoteState:
    exists: bool
    current_target: str | None
    current_kind: str  # link | missing | other
    markers: dict[str, ReleaseMarker | None]  # every release dir; None = incomplete
    venvs: dict[str, bool]  # lock hash -> complete
    locked: bool
    lock_owner: LockOwner | None
    events: list[deploy_log.LogEvent] = field(default_factory=list)
    unreadable_log_lines: int = 0

    @property
    def live(self) -> str | None:
        if self.current_target is None:
            return None
        return release_id_from_link(self.current_target)

    @property
    def live_marker(self) -> ReleaseMarker | None:
        return self.markers.get(self.live) if self.live else None

    @property
    def complete(self) -> list[str]:
        return sorted_releases(r for r, m in self.markers.items() if m is not None)

    @property
    def bad(self) -> set[str]:
        return deploy_log.bad_releases(self.events)

    def previous_good(self, live: str | None = None) -> str | None:
        return deploy_log.previous_good(
            self.events, self.live if live is None else live, self.complete
        )

    def release_of_sha(self, sha: str) -> str | None:
        """The newest complete, not-bad release holding `sha` (a redeploy can reuse it)."""
        bad = self.bad
        hits = []
        for rid in self.complete:
            marker = self.markers[rid]
            if marker is not None and marker.sha == sha and rid not in bad:
                hits.append(rid)
        return hits[-1] if hits else None


def _marker(release_id: str, data: Any) -> ReleaseMarker | None:
    """The marker of `release_id`, or None (incomplete) when it is missing, malformed or not
    gatebot's own: the marker gatebot writes names its release, and its sha begins with the
    id's sha7. A marker committed in the tree (uploaded with it, then left by a cut deploy)
    cannot know the id of the release it lands in, so it never makes that release complete."""
    if data is None:
        return None
    try:
        marker = ReleaseMarker.model_validate(data)
    except ValidationError:
        return None
    m = RELEASE_ID_RE.match(release_id)
    if marker.release != release_id or m is None or not marker.sha.startswith(m["sha7"]):
        return None
    return marker


async def read_state(agent: HostAgent, layout: RemoteLayout) -> RemoteState:
    """The state under the target's path (a malformed answer is already a TransportError)."""
    try:
        data = await agent.inspect(Inspect(layout.root))
    except AgentError as exc:
        raise TransportError(
            f"{agent.name}: reading the deploy state under {layout.root} failed: {exc}"
        ) from None
    events, unreadable = deploy_log.parse_log(data.log)
    return RemoteState(
        exists=data.exists,
        current_target=data.current,
        current_kind=data.current_kind,
        markers={k: _marker(k, v) for k, v in data.releases.items() if is_release_id(k)},
        venvs=dict(data.venvs),
        locked=data.locked,
        lock_owner=LockOwner.from_json(data.lock),
        events=events,
        unreadable_log_lines=unreadable,
    )
