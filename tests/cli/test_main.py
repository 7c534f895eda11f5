"""The command table: every command module's commands are reachable, and nothing else."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from bot.cli.main import COMMAND_HELP, COMMAND_MODULES, cli

MODULES = {
    "bot.cli.review",
    "bot.cli.deploy",
    "bot.cli.audit",
    "bot.cli.metrics",
    "bot.cli.onboarding",
    "bot.cli.action",
    "bot.cli.approve",
}


def test_table_matches_the_modules_commands() -> None:
    defined: dict[str, str] = {}
    for name in MODULES:
        for command in importlib.import_module(name).COMMANDS:
            assert command.name is not None
            defined[command.name] = name
    assert defined == COMMAND_MODULES


def test_declared_help_is_each_commands_own() -> None:
    ctx = click.Context(cli)
    assert set(COMMAND_HELP) == set(COMMAND_MODULES)
    for name, summary in COMMAND_HELP.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.get_short_help_str(limit=1000) == summary, name


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from bot.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('asyncssh', 'pygit2', 'github', 'google.genai')\n"
        "print('loaded:' + ','.join(m for m in sys.modules if m in heavy or\n"
        "    m.startswith('bot.cli.') and m != 'bot.cli.main'))\n"
    )
    out = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "loaded:"


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMAND_MODULES:
        assert f"  {name}" in out


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "reviw"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "reviw" in proc.stderr


def test_review_does_not_import_unrelated_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from bot.cli.main import cli\n"
        "import click\n"
        "ctx = click.Context(cli)\n"
        "cli.get_command(ctx, 'review')\n"
        "print(','.join(m for m in ('asyncssh', 'bot.cli.onboarding', 'bot.cli.audit') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
