"""The deploy log `<path>/.gatebot/deploy.jsonl`: append-only JSON lines on the host.

Each line: {"ts", "event", "release", "sha", "previous", "ok", "detail", "run_id"} with event one of
release | switch | rollback | bad | audit | prune | unlock | hook | env | health | stop. It
answers which release was live when (switch/rollback events) and which releases are bad.
Appends happen under the deploy lock; a line broken by a crash is skipped when reading, never
fatal.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.deploy.host.base import AgentError, HostAgent
from bot.deploy.hostside.protocol import Append
from bot.deploy.layout import RemoteLayout, sorted_releases
from bot.errors import TransportError

Event = Literal[
    "release",
    "switch",
    "rollback",
    "bad",
    "audit",
    "prune",
    "unlock",
    "hook",
    "env",
    "health",
    "stop",
]


class LogEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # A line without its time still says what happened (which release went live or is bad).
    ts: str = ""
    event: Event
    release: str | None = None
    sha: str | None = None
    previous: str | None = None
    ok: bool = True
    detail: str = ""
    run_id: str | None = None


def make_event(
    event: Event,
    *,
    release: str | None = None,
    sha: str | None = None,
    previous: str | None = None,
    ok: bool = True,
    detail: str = "",
    run_id: str | None = None,
    now: datetime | None = None,
) -> LogEvent:
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return LogEvent(
        ts=when,
        event=event,
        release=release,
        sha=sha,
        previous=previous,
        ok=ok,
        detail=detail,
        run_id=run_id,
    )


def parse_log(text: str) -> tuple[list[LogEvent], int]:
    """Events oldest first and the number of unreadable lines skipped."""
    events: list[LogEvent] = []
    bad = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            events.append(LogEvent.model_validate(json.loads(raw)))
        except (ValueError, ValidationError, RecursionError):
            # RecursionError: json.loads of a deeply nested line; one hostile line must not
            # stop every later deploy from reading the log.
            bad += 1
    return events, bad


def bad_releases(events: Iterable[LogEvent]) -> set[str]:
    return {e.release for e in events if e.event == "bad" and e.release}


def live_history(events: Iterable[LogEvent]) -> list[str]:
    """Releases in the order they went live (successful switch and rollback events)."""
    return [e.release for e in events if e.event in ("switch", "rollback") and e.ok and e.release]


def previous_good(
    events: list[LogEvent], live: str | None, complete: Collection[str]
) -> str | None:
    """The release to roll back to: walking back through what was live, the latest release that
    is complete, not bad and was not itself left by a rollback (so repeated rollbacks keep going
    back); without a usable history, the newest complete non-bad release older than `live`."""
    bad = bad_releases(events)
    abandoned = {e.previous for e in events if e.event == "rollback" and e.ok and e.previous}
    history = live_history(events)
    for rid in reversed(history):
        if rid != live and rid not in bad and rid not in abandoned and rid in complete:
            return rid
    if history:
        return None
    older = [r for r in sorted_releases(complete) if r != live and r not in bad]
    if live is not None:
        order = sorted_releases([*older, live])
        older = order[: order.index(live)]
    return older[-1] if older else None


async def append_event(agent: HostAgent, layout: RemoteLayout, event: LogEvent) -> None:
    try:
        await agent.append(Append(layout.deploy_log, event.model_dump_json() + "\n"))
    except AgentError as exc:
        raise TransportError(f"{agent.name}: cannot append to the deploy log: {exc}") from None
