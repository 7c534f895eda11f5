"""`gatebot deploy | rollback | releases | unlock`: releases over SSH (see docs/deploy.md).

Start-up is part of every deploy's time: this module imports only what parsing the command
needs. A deploy or rollback loads its config, starts connecting to the hosts of the first
rollout batch (OpenSSH's `ssh` does that in other processes, bot/deploy/host/openssh.py), and
only then imports the deploy flow and reads git, while the hosts answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.cli import quickexit, resident
from bot.cli.options import config_option, repo_option
from bot.errors import DeployFailed, UsageError

if TYPE_CHECKING:
    from bot.deploy.context import DeployContext
    from bot.deploy.host.early import Early
    from bot.deploy.manifest_job import ManifestJob
    from bot.deploy.report import RolloutReport

T = TypeVar("T")
_READ = object()  # _context: read the config file itself


def run_cancellable(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`; SIGINT/SIGTERM (a cancelled workflow) cancel it so every `finally` runs and the
    deploy lock is released, then the run fails with a DeployFailed that says so."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def cancel(name: str) -> None:
            received.append(name)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cancel, sig.name)
        try:
            return await coro
        except asyncio.CancelledError:
            if received:
                raise DeployFailed(
                    f"interrupted by {received[0]}; the deploy lock was released and `current` "
                    "is whatever the deploy log's last switch says"
                ) from None
            raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def _context(
    config_path: Path | None, repo: Path, no_audit: bool = False, found: Any = _READ
) -> DeployContext:
    from bot.config.load import parse_config
    from bot.config.model import GatebotConfig
    from bot.config.source import read_config_data
    from bot.deploy.context import DeployContext
    from bot.deploy.lock import run_id_from_env
    from bot.deploy.progress import make_reporter
    from bot.localstate import resolve_cache_dir

    if found is _READ:
        found = read_config_data(config_path, repo)
    config = GatebotConfig() if found is None else parse_config(*found)
    env = dict(os.environ)
    return DeployContext(
        config=config,
        env=env,
        # Relative key and known_hosts files (e.g. .github/inf_known_hosts) live in the repo.
        base=repo.resolve(),
        reporter=make_reporter(env),
        repo_path=repo,
        cache_dir=resolve_cache_dir(None, env),
        run_id=run_id_from_env(env),
        audit=not no_audit,
    )


def _early_context(
    config_path: Path | None,
    repo: Path,
    no_audit: bool,
    targets: tuple[str, ...],
    ref: str | None = None,
) -> tuple[DeployContext, list[str], list[Early], ManifestJob | None]:
    """Read the config, start `ssh` to the first hosts at once (bot/deploy/host/early.py) and
    a child reading `ref` from git (bot/deploy/manifest_job.py), then validate the config and
    build the context while they work."""
    from bot.config.source import read_config_data
    from bot.deploy.host.early import start_early, stop_early

    found = read_config_data(config_path, repo)
    early = start_early(found[0], list(targets), os.environ, repo.resolve()) if found else []
    job = None
    try:
        if ref is not None:
            from bot.deploy.manifest_job import ManifestJob

            job = ManifestJob.start(repo, ref)
        from bot.deploy.context import resolve_targets

        ctx = _context(config_path, repo, no_audit, found)
        names = resolve_targets(ctx.config, list(targets))
    except BaseException:
        stop_early(early)
        if job is not None:
            job.cancel()
        raise
    if job is not None:
        job.warn = ctx.reporter.warn
    _keep_resident(ctx, names)
    return ctx, names, early, job


def _keep_resident(ctx: DeployContext, names: list[str]) -> None:
    """Keep this runner's resident gatebot as long as the targets keep their connections
    (`ssh_persist_s`): the next deploy command skips start-up too (bot/cli/resident.py)."""
    resident.keep(max((ctx.target(n).ssh_persist_s for n in names), default=0.0))


async def _started(ctx: DeployContext, names: list[str], early: list[Early]) -> None:
    """Begin connecting to the hosts the rollout goes to first (taking the connections
    started before the config was validated, where they fit)."""
    from bot.deploy.host.connect import HostConnector
    from bot.deploy.host.early import stop_early

    hosts = ctx.hosts()
    taken: set[str] = set()
    try:
        for e in early:
            if (
                e.name in names
                and isinstance(hosts, HostConnector)
                and hosts.adopt(e, ctx.target(e.name))
            ):
                taken.add(e.name)
    finally:
        stop_early([e for e in early if e.name not in taken])
    await ctx.prestart(names[: ctx.config.deploy.rollout.batch_size])


def _finish(report: RolloutReport, report_file: Path | None) -> None:
    from bot.deploy.progress import print_summary
    from bot.deploy.rollout import raise_for_failures
    from bot.github.outlet import ActionsOutlet

    print_summary(report.hosts)
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    outlet = ActionsOutlet.from_env(os.environ)
    if outlet.summary_path is not None:
        from bot.deploy.jobsummary import summary_markdown

        outlet.summary(summary_markdown(report), full="the deploy log and --report")
    raise_for_failures(report)


_target = click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="target name from deploy.targets; repeat, or `all`",
)
_config = config_option("configuration file (default: .github/gatebot.yml in --repo)")
_repo = repo_option("git repository holding the commit")
_report = click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the per-host JSON report here",
)


@click.command("deploy")
@_target
@click.option("--ref", default="HEAD", show_default=True, help="commit to release")
@_repo
@click.option("--dry-run", is_flag=True, help="show what would be sent; change nothing")
@click.option("--no-audit", is_flag=True, help="skip the post-switch audit")
@_config
@_report
def deploy_cmd(
    targets: tuple[str, ...],
    ref: str,
    repo: Path,
    dry_run: bool,
    no_audit: bool,
    config_path: Path | None,
    report_file: Path | None,
) -> None:
    """Release REF to the target(s): delta upload, venv, atomic switch, audit, auto-rollback."""
    ctx, names, early, job = _early_context(config_path, repo, no_audit, targets, ref)
    assert job is not None

    async def run() -> RolloutReport:
        try:
            await _started(ctx, names, early)
            from bot.deploy import flow  # imported while the hosts are connected to

            # An unknown ref is a usage error before any host is touched (ManifestJob.sha).
            return await flow.deploy(ctx, names, job, dry_run=dry_run)
        finally:
            job.cancel()
            await ctx.close_hosts()

    try:
        report = run_cancellable(run())
    finally:
        ctx.reporter.close()
    quickexit.allow()  # all done and closed: nothing is left for Python's shutdown
    _finish(report, report_file)


@click.command("rollback")
@_target
@click.option("--to", "to", default=None, help="release id (default: the previous good one)")
@_repo
@click.option("--no-audit", is_flag=True, help="skip the post-switch audit")
@_config
@_report
def rollback_cmd(
    targets: tuple[str, ...],
    to: str | None,
    repo: Path,
    no_audit: bool,
    config_path: Path | None,
    report_file: Path | None,
) -> None:
    """Switch back to the previous good release (or --to); no transfer."""
    ctx, names, early, _job = _early_context(config_path, repo, no_audit, targets)

    async def run() -> RolloutReport:
        try:
            await _started(ctx, names, early)
            from bot.deploy import flow  # imported while the hosts are connected to

            return await flow.rollback(ctx, names, to)
        finally:
            await ctx.close_hosts()

    try:
        report = run_cancellable(run())
    finally:
        ctx.reporter.close()
    quickexit.allow()  # all done and closed: nothing is left for Python's shutdown
    _finish(report, report_file)


@click.command("releases")
@_target
@_repo
@_config
def releases_cmd(targets: tuple[str, ...], repo: Path, config_path: Path | None) -> None:
    """List the releases on the target(s): id, sha, live, bad, created."""
    from rich.console import Console
    from rich.table import Table

    from bot.deploy import flow

    ctx = _context(config_path, repo)
    names = flow.resolve_targets(ctx.config, list(targets))
    _keep_resident(ctx, names)
    console = Console(file=sys.stdout, highlight=False, width=160)
    for name in names:
        rows, state = run_cancellable(flow.list_releases(ctx, name))
        table = Table(title=f"{name}: {ctx.target(name).path}")
        for col in ("release", "sha", "live", "bad", "complete", "created"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r.release,
                r.sha[:12],
                "*" if r.live else "",
                "bad" if r.bad else "",
                "yes" if r.complete else "no",
                r.created,
            )
        console.print(table)
        if state.locked:
            who = state.lock_owner.describe() if state.lock_owner else "an unknown owner"
            console.print(f"locked by {who}")


@click.command("unlock")
@_target
@click.option("--owner", default=None, help="remove the lock only if this run id holds it")
@click.option("--force", is_flag=True, help="remove the lock whoever holds it")
@_repo
@_config
def unlock_cmd(
    targets: tuple[str, ...],
    owner: str | None,
    force: bool,
    repo: Path,
    config_path: Path | None,
) -> None:
    """Remove the deploy lock left by a dead deploy (say whose with --owner, or --force)."""
    if owner and force:
        raise UsageError("use either --owner RUN_ID or --force, not both")
    from bot.deploy import flow

    ctx = _context(config_path, repo)
    names = flow.resolve_targets(ctx.config, list(targets))
    _keep_resident(ctx, names)
    for name in names:
        click.echo(run_cancellable(flow.unlock(ctx, name, owner, force)))


COMMANDS: list[click.Command] = [deploy_cmd, rollback_cmd, releases_cmd, unlock_cmd]
