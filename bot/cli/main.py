"""Entry point: builds the click group and maps the exception tree to exit codes."""

from __future__ import annotations

import sys

import click

from bot import __version__
from bot.cli import action, audit, deploy, metrics, onboarding, review
from bot.errors import GatebotError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gatebot")
def cli() -> None:
    """gatebot: a cheap AI review gate on every PR; atomic releases with a 9-layer audit."""


for _module in (review, deploy, audit, metrics, onboarding, action):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    try:
        # Non-standalone click returns (not raises) the code of a command's `Exit(code)`.
        rc = cli.main(args=argv, prog_name="gatebot", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code != 0 else 0)
    except GatebotError as exc:
        click.echo(f"gatebot: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
