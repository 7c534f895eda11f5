"""Placeholder: commands are registered here by their capability's implementation."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
