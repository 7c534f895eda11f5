"""Entry point: builds the click group and maps the exception tree to exit codes."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from bot import __version__
from bot.errors import GatebotError
from bot.inert import printable
from bot.redact import redact

# Command name -> the module that defines it (in its COMMANDS list). Modules are imported only
# when their command runs (click's lazy-group pattern): google-genai and asyncssh alone cost
# ~1 s of start-up, which every `gatebot review` in CI would otherwise pay for commands it
# never uses.
COMMAND_MODULES: dict[str, str] = {
    "review": "bot.cli.review",
    "deploy": "bot.cli.deploy",
    "rollback": "bot.cli.deploy",
    "releases": "bot.cli.deploy",
    "unlock": "bot.cli.deploy",
    "audit": "bot.cli.audit",
    "metrics": "bot.cli.metrics",
    "init": "bot.cli.onboarding",
    "doctor": "bot.cli.onboarding",
    "cache-key": "bot.cli.action",
    "check-abandon": "bot.cli.action",
    "approve": "bot.cli.approve",
}


# Command name -> its one-line help, so `gatebot --help` lists the commands without importing
# a single command module (tests/cli/test_main.py checks each against the command's docstring).
COMMAND_HELP: dict[str, str] = {
    "approve": "Approve a pull request's head commit: the gate's check run on it becomes success.",
    "audit": "Run the 9-layer audit of TARGET: exit 0 all pass/skip, 1 a layer failed.",
    "cache-key": "Print the actions/cache key and restore keys for the review cache.",
    "check-abandon": "Close the check run an unfinished review left in progress (Actions only).",
    "deploy": "Release REF to the target(s): delta upload, venv, atomic switch, audit, "
    "auto-rollback.",
    "doctor": "Check config, Gemini, GitHub, cache and every deploy target; each problem with "
    "a fix.",
    "init": "Write .github/gatebot.yml and the review (and deploy) workflows, then list next "
    "steps.",
    "metrics": "Cost, savings, cache and deploy figures per run and over the recent window, "
    "with alerts.",
    "releases": "List the releases on the target(s): id, sha, live, bad, created.",
    "review": "Review the change base...head (like a pull request) and decide pass / fail / "
    "neutral.",
    "rollback": "Switch back to the previous good release (or --to); no transfer.",
    "unlock": "Remove the deploy lock left by a dead deploy (say whose with --owner, or --force).",
}


def _shorten(text: str, limit: int) -> str:
    """`text` cut at a word to fit `limit` characters, with "..." (as click shortens help)."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 3)].rsplit(" ", 1)[0] + "..."


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMAND_HELP: listing commands imports none of them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, _shorten(COMMAND_HELP[n], limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(module_name)
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return command
        raise RuntimeError(f"{module_name} does not define the command {cmd_name!r}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gatebot")
def cli() -> None:
    """gatebot: a cheap AI review gate on every PR; atomic releases with a 9-layer audit."""


class InertFormatter(logging.Formatter):
    """Log lines carry file names, model text and providers' error messages: each record is one
    inert line (no control characters, no workflow command; bot/inert.py) with the
    credentials of any URL in it redacted (bot/redact.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record)))


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(InertFormatter("%(message)s"))
    root = logging.getLogger()
    if not any(isinstance(h.formatter, InertFormatter) for h in root.handlers):
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


def _show(exc: GatebotError) -> str:
    # The message may quote a file name, a config key or a provider's answer: inert, redacted.
    text = f"gatebot: {printable(redact(exc.message))}"
    if exc.hint:
        text += f"\n  hint: {printable(redact(exc.hint))}"
    return text


def main(argv: list[str] | None = None) -> None:
    _log_to_stderr()
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
        click.echo(_show(exc), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def run() -> None:
    """A command run in this process (bot/cli/entry.py): `main`, then the resident a deploy
    command asked for (bot/cli/resident.py), then the quick exit a command may have allowed
    (bot/cli/quickexit.py). Tests call `main`, which always ends in SystemExit."""
    from bot.cli import quickexit, resident  # here: `gatebot --help` imports no command

    quickexit.reset()
    try:
        main()
    except SystemExit as exc:
        resident.spawn(resident.wanted())
        quickexit.exit_now(exc)
        raise
