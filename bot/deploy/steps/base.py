"""The run of one operation on one host, and the named steps it is made of.

A `HostRun` carries the inputs of a run (context, host agent, manifest or rollback target) and
the typed result of each step that has run (`plan`, `built`, `audit`, `recovery`, `pruned`...).
Steps read what earlier steps produced and set their own result; the host's report is built
from those results at the end (bot/deploy/report.py), never used as state.

`run_steps` runs a list of `Step`s in order with hook points between them, like Capistrano's
`before`/`after` tasks: `ctx.hooks["before_switch"]` runs before the `switch` step, and a hook
that raises stops the run there (before `current` moves, for `before_switch`). Adding a step
(an env file per release, a health gate before the switch) is inserting a `Step` in a list
(bot/deploy/flow.py) at the place it belongs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from bot.config.deploy import TargetConfig
from bot.deploy import log as deploy_log
from bot.deploy.host.base import HostAgent
from bot.deploy.layout import RemoteLayout
from bot.deploy.lock import DeployLock
from bot.deploy.manifest import Manifest
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.deploy.context import DeployContext
    from bot.deploy.hostside.protocol import EnvWritten, Health, ServiceStarted
    from bot.deploy.retention import PrunePlan
    from bot.deploy.steps.build import Built
    from bot.deploy.steps.golive import AuditOutcome
    from bot.deploy.steps.hooks import HookRun
    from bot.deploy.steps.plan import Plan
    from bot.deploy.steps.recover import Recovery


@dataclass
class Counts:
    """What moved and what the host hashed, summed over the steps of a run."""

    files_sent: int = 0
    bytes_sent: int = 0  # into the upload channel, record headers included
    content_bytes_sent: int = 0
    files_deleted: int = 0
    files_reused: int = 0
    bytes_reused: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    files_hash_known: int = 0


@dataclass
class HostRun:
    ctx: DeployContext
    name: str
    agent: HostAgent
    op: Literal["deploy", "rollback"]
    manifest: Manifest | None = None  # deploy: what to release (see `need_manifest`)
    #: deploy: the commit to release, known before its manifest (bot/deploy/manifest_job.py)
    sha: str | None = None
    ref: str | None = None
    manifest_future: asyncio.Future[Manifest] | None = None
    to: str | None = None  # rollback: the release asked for (None: the previous good one)
    dry_run: bool = False
    # Results, set by the steps that produce them.
    plan: Plan | None = None
    built: Built | None = None
    audit: AuditOutcome | None = None
    recovery: Recovery | None = None
    pruned: PrunePlan | None = None
    live: str | None = None  # the release live as far as this run knows
    switch_asked: bool = False  # `current` may have moved: a cut from here on is recovered
    counts: Counts = field(default_factory=Counts)
    phases: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lock_run_id: str | None = None  # the run id on our deploy lock, once taken
    hooks_ran: list[HookRun] = field(default_factory=list)
    env_written: EnvWritten | None = None  # names only: what changed in the env file
    service: ServiceStarted | None = None  # the process started for the release (health)
    health: Health | None = None
    stopped: str | None = None  # the release whose process was stopped after the switch
    #: The hooks of this run: the context's, with the target's configured commands (flow.py).
    hooks: Mapping[str, Sequence[StepFn]] | None = None

    async def need_manifest(self) -> Manifest:
        """The manifest, waiting for it when it is still being read from git. Nothing is
        imported while waiting: the child reading it shares the two cores with this process,
        and `build` loads pygit2 while the host seeds (`overlapped`), which measured faster."""
        if self.manifest is None:
            assert self.manifest_future is not None
            self.manifest = await asyncio.shield(self.manifest_future)
        return self.manifest

    @property
    def layout(self) -> RemoteLayout:
        return RemoteLayout(self.target.path)

    @property
    def target(self) -> TargetConfig:
        return self.agent.target

    def say(self, message: str) -> None:
        self.ctx.reporter.line(self.name, message)

    def note(self, message: str) -> None:
        """A note for the report, also said."""
        self.notes.append(message)
        self.say(message)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - start
            self.phases[name] = round(self.phases.get(name, 0.0) + took, 4)

    async def log(self, event: deploy_log.Event, **fields: Any) -> None:
        await deploy_log.append_event(
            self.agent,
            self.layout,
            deploy_log.make_event(event, run_id=self.ctx.run_id or None, **fields),
        )

    def lock(self) -> DeployLock:
        ctx, name, target = self.ctx, self.name, self.target
        return DeployLock(
            self.agent,
            self.layout,
            ctx.owner(self.op),
            wait_s=target.lock_wait_s,
            reopen=lambda: ctx.hosts().connect(name, target),
            on_wait=self.say,
        )

    def rebind(self, agent: HostAgent) -> HostRun:
        """This run over a fresh connection (results shared)."""
        self.agent = agent
        return self


StepFn = Callable[[HostRun], Awaitable[None]]
T = TypeVar("T")
U = TypeVar("U")


async def overlapped(request: Awaitable[T], work: Callable[[], U]) -> tuple[T, U]:
    """`request` (a round trip to the host) and `work` (imports, local reads: this process's
    CPU), done together: the request is sent first, then `work` runs while the host works on
    it. Python runs one thread at a time, so this is the only way a deploy's own start-up work
    (pygit2 alone is ~40 ms to import) stops adding to the host's. If `work` raises, the
    request is still awaited, so the channel to the host stays in step."""
    task = asyncio.ensure_future(request)
    await asyncio.sleep(0)  # the task writes its request before `work` holds this thread
    try:
        done = work()
    except BaseException:
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task, done


def preload_history() -> None:
    """Import what writing the run history at the end needs (~25 ms; see `overlapped`)."""
    from bot.deploy import history

    history.preload()


@dataclass(frozen=True)
class Step:
    """A named step; `when` says whether it applies to this run (from earlier results)."""

    name: str
    run: StepFn
    when: Callable[[HostRun], bool] = lambda run: True


def check_hooks(hooks: Sequence[str], steps: Sequence[Step], extra: Sequence[str] = ()) -> None:
    """Every hook point names a step of the run: a typo is a usage error, not a silent no-op."""
    points = {f"{w}_{s.name}" for s in steps for w in ("before", "after")} | set(extra)
    unknown = sorted(set(hooks) - points)
    if unknown:
        raise UsageError(
            f"unknown deploy hook point(s) {', '.join(unknown)}; known: {', '.join(sorted(points))}"
        )


async def run_hooks(run: HostRun, point: str) -> None:
    hooks = run.hooks if run.hooks is not None else run.ctx.hooks
    for hook in hooks.get(point, ()):
        await hook(run)


async def run_steps(run: HostRun, steps: Sequence[Step]) -> None:
    """Run `steps` in order, each with its hook points (only steps that apply)."""
    for step in steps:
        if not step.when(run):
            continue
        await run_hooks(run, f"before_{step.name}")
        await step.run(run)
        await run_hooks(run, f"after_{step.name}")
