"""Options several commands share, declared once: each command says only what they mean for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def repo_option(help: str) -> Decorator:
    """`--repo DIR`, default the current directory."""
    return click.option(
        "--repo",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help=help,
    )


def config_option(help: str, *, must_exist: bool = False) -> Decorator:
    """`--config FILE` (the parameter `config_path`); `must_exist`: a missing file is a usage
    error (exit 2) before the command runs."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path, exists=must_exist),
        default=None,
        help=help,
    )


def cache_dir_option(help: str) -> Decorator:
    """`--cache-dir DIR`: the review cache and the run history (default: $GATEBOT_CACHE_DIR or
    .gatebot-cache, see bot/review/cache.py)."""
    return click.option(
        "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=help
    )
