"""`gatebot metrics`: figures and alerts from the run history beside the review cache."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import click

from bot.cli.options import cache_dir_option, config_option
from bot.config.load import load_config
from bot.errors import AlertsFiring, UsageError
from bot.github.outlet import ActionsOutlet
from bot.localstate import resolve_cache_dir
from bot.metrics import openmetrics, render, report
from bot.metrics.figures import parse_since

FORMATS = ("table", "json", "markdown", "openmetrics")


@click.command("metrics")
@cache_dir_option(
    "the review cache directory holding history.jsonl [default: $GATEBOT_CACHE_DIR or "
    ".gatebot-cache]"
)
@click.option("--since", default=None, help="only runs since: a duration (7d, 24h) or ISO time")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--check", is_flag=True, help="list firing alerts and exit 1 when one fires")
@click.option(
    "--textfile",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="also write a node_exporter textfile (*.prom) [default: metrics.textfile]",
)
@config_option("configuration file [default: .github/gatebot.yml when present]")
def metrics_command(
    cache_dir: Path | None,
    since: str | None,
    fmt: str,
    check: bool,
    textfile: Path | None,
    config_path: Path | None,
) -> None:
    """Cost, savings, cache and deploy figures per run and over the recent window, with alerts."""
    env = os.environ
    config = load_config(config_path)
    textfile = textfile or (Path(config.metrics.textfile) if config.metrics.textfile else None)
    if textfile is not None and textfile.suffix != ".prom":
        raise UsageError(f"--textfile {textfile}: node_exporter only reads files ending in .prom")
    since_at = parse_since(since, datetime.now(timezone.utc)) if since else None
    try:
        rep = report.load(resolve_cache_dir(cache_dir, env), config.metrics.alerts, since_at)
    except OSError as exc:
        raise UsageError(f"cannot read the run history: {exc}") from None
    outlet = ActionsOutlet.from_env(env)

    notes = list(rep.problems)
    if not rep.path.exists():
        notes.insert(
            0, f"no run history at {rep.path} (no run recorded yet, or cache not restored)"
        )
    for problem in notes:
        outlet.warning(problem)

    if fmt == "openmetrics":
        registry = openmetrics.build_registry(rep.entries, rep.alerts)
        click.echo(openmetrics.exposition(registry), nl=False)
    elif fmt == "json":
        click.echo(render.render_json(rep))
    elif fmt == "markdown":
        click.echo(render.render_markdown(rep), nl=False)
    else:
        click.echo(render.render_table(rep), nl=False)

    if textfile is not None:
        try:
            openmetrics.save_textfile(textfile, openmetrics.build_registry(rep.entries, rep.alerts))
        except OSError as exc:
            raise UsageError(f"--textfile {textfile}: cannot write: {exc}") from None

    if check:
        # In Actions each alert becomes a ::warning:: annotation (stdout, after the report: the
        # runner reads commands there); elsewhere a plain line on stderr. Without --check the
        # report alone goes to stdout, so `--format markdown >> $GITHUB_STEP_SUMMARY` stays clean.
        for alert in rep.alerts:
            if outlet.in_actions:
                outlet.command("warning", alert.message, {"title": f"gatebot: {alert.id}"})
            else:
                click.echo(f"ALERT {alert.id}: {alert.message}", err=True)
        if rep.alerts:
            raise AlertsFiring(f"{len(rep.alerts)} alert(s) firing")
        click.echo("no alerts firing", err=True)


COMMANDS: list[click.Command] = [metrics_command]
