"""What is on the host right now, read in ONE round trip: current, releases, venvs, lock, log.

The host side is `op_inspect` in agent_script.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.deploy import log as deploy_log
from bot.deploy.agent import Agent, AgentError
from bot.deploy.layout import RemoteLayout, is_release_id, release_id_from_link, sorted_releases
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


def _marker(data: Any) -> ReleaseMarker | None:
    if data is None:
        return None
    try:
        return ReleaseMarker.model_validate(data)
    except ValidationError:
        return None


async def read_state(agent: Agent, layout: RemoteLayout) -> RemoteState:
    try:
        data = await agent.call("inspect", root=layout.root)
    except AgentError as exc:
        raise TransportError(
            f"{agent.session.name}: reading the deploy state under {layout.root} failed: {exc}"
        ) from None
    events, unreadable = deploy_log.parse_log(data["log"])
    return RemoteState(
        exists=bool(data["exists"]),
        current_target=data["current"],
        current_kind=data["current_kind"],
        markers={k: _marker(v) for k, v in data["releases"].items() if is_release_id(k)},
        venvs={k: bool(v) for k, v in data["venvs"].items()},
        locked=bool(data["locked"]),
        lock_owner=LockOwner.from_json(data["lock"]),
        events=events,
        unreadable_log_lines=unreadable,
    )
