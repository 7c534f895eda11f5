"""`gatebot init` and `gatebot doctor`: from an empty repository to a green first run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bot.cli.options import config_option, repo_option
from bot.config import DEFAULT_CONFIG_PATH
from bot.errors import UsageError
from bot.onboarding.init import (
    DeployTargetSpec,
    FileState,
    InitOptions,
    render_target,
    repo_root,
    run_init,
)
from bot.onboarding.keys import default_key_path, ensure_deploy_key, pinning_instructions
from bot.onboarding.nextsteps import file_lines, next_steps
from bot.onboarding.pins import GATEBOT, parse_action


def _target_spec(
    name: str | None, host: str | None, user: str | None, path: str | None, port: int | None
) -> DeployTargetSpec | None:
    if name is None:
        given = [f for f, v in (("--host", host), ("--user", user), ("--path", path)) if v]
        if given or port is not None:
            flags = ", ".join(given + (["--port"] if port is not None else []))
            raise UsageError(f"{flags} only make sense with --deploy-target NAME")
        return None
    if not host:
        raise UsageError(f"--deploy-target {name}: --host is required")
    spec = DeployTargetSpec(name, host, user or "deploy", path, port if port is not None else 22)
    spec.validate()
    return spec


@click.command("init")
@repo_option("the repository (any directory in its work tree)")
@click.option("--force", is_flag=True, help="overwrite files that exist with other content")
@click.option("--dry-run", is_flag=True, help="show what would be written; write nothing")
@click.option("--deploy-target", "target_name", metavar="NAME", help="add a deploy target")
@click.option("--host", metavar="H", help="the target's SSH host")
@click.option("--user", metavar="U", help="SSH user on the host [default: deploy]")
@click.option("--path", "remote_path", metavar="P", help="release root [default: /opt/NAME]")
@click.option("--port", type=int, metavar="N", help="SSH port [default: 22]")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    help="where the deploy private key goes [default: ~/.ssh/gatebot_NAME_ed25519]",
)
@click.option(
    "--action",
    "action_spec",
    metavar="OWNER/REPO@SHA",
    help=f"the gatebot action to pin [default: {GATEBOT.repo}@{GATEBOT.sha[:12]}…]",
)
def init_command(
    repo: Path,
    force: bool,
    dry_run: bool,
    target_name: str | None,
    host: str | None,
    user: str | None,
    remote_path: str | None,
    port: int | None,
    key_file: Path | None,
    action_spec: str | None,
) -> None:
    """Write .github/gatebot.yml and the review (and deploy) workflows, then list next steps."""
    target = _target_spec(target_name, host, user, remote_path, port)
    if key_file is not None and target is None:
        raise UsageError("--key-file only makes sense with --deploy-target NAME")
    options = InitOptions(
        action=parse_action(action_spec) if action_spec else GATEBOT, target=target
    )
    root = repo_root(repo)
    result = run_init(root, options, force=force, dry_run=dry_run)
    click.echo(("Dry run: nothing written. " if dry_run else "") + f"Repository: {result.root}")
    for line in file_lines(result, dry_run=dry_run):
        click.echo(line)
    if dry_run:
        for action in result.actions:
            if action.state in (FileState.CREATE, FileState.OVERWRITE):
                click.echo(f"\n--- {action.file.path}")
                click.echo(action.file.content.rstrip("\n"))
    if target is not None:
        key_path = (key_file or default_key_path(target.name)).expanduser()
        click.echo("")
        if dry_run:
            click.echo(f"Would create (or reuse) the deploy key {key_path} (mode 0600).")
        else:
            key = ensure_deploy_key(key_path, f"gatebot-deploy-{target.name}", result.root)
            for line in pinning_instructions(target, key):
                click.echo(line)
    click.echo("")
    for line in next_steps(options):
        click.echo(line)
    kept_config = any(a.file.path == str(DEFAULT_CONFIG_PATH) for a in result.kept)
    if target is not None and kept_config:
        click.echo(
            f"\n{DEFAULT_CONFIG_PATH} was kept: unless it already has the target "
            f"{target.name!r}, add this block under deploy.targets:"
        )
        click.echo(render_target(target).strip("\n"))
    if result.kept:
        click.echo(
            f"\n{len(result.kept)} file(s) exist with other content and were kept; "
            "re-run with --dry-run to see the new content, --force to overwrite.",
            err=True,
        )


@click.command("doctor")
@repo_option("the repository (any directory in its work tree)")
# A --config that is not there is a usage error (exit 2), not a failing check.
@config_option("config file [default: REPO/.github/gatebot.yml]", must_exist=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.option("--target", metavar="NAME", help="check only this deploy target")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=120),
    default=5.0,
    show_default=True,
    help="seconds per network check",
)
def doctor_command(
    repo: Path, config_path: Path | None, as_json: bool, target: str | None, timeout: float
) -> None:
    """Check config, Gemini, GitHub, cache and every deploy target; each problem with a fix."""
    # Imported here: it loads google-genai and asyncssh, which no other command may pay for.
    from bot.onboarding.doctor import DoctorContext, run_doctor
    from bot.onboarding.doctor.render import render_json, render_text

    ctx = DoctorContext(
        root=repo.resolve(),
        env=dict(os.environ),
        # A --config given on the command line is relative to where the command runs.
        config_path=config_path.resolve() if config_path else None,
        timeout_s=timeout,
    )
    report = run_doctor(ctx, target=target)
    if as_json:
        click.echo(render_json(report))
    else:
        click.echo(render_text(report, color=sys.stdout.isatty()))
    click.get_current_context().exit(report.exit_code)


COMMANDS: list[click.Command] = [init_command, doctor_command]
