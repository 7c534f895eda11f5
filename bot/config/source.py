"""Find and read `.github/gatebot.yml` as plain data (YAML only, no validation): the first half
of loading the config (bot/config/load.py validates it). Light on purpose: a deploy reads the
file, starts connecting to its hosts, and validates while they answer (bot/cli/deploy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(".github/gatebot.yml")


def printable(text: str) -> str:
    """`text` with every non-printable character escaped as repr() would (`\\n`, `\\x85`,
    `\\u2028`). Key names and values come from the config file, i.e. from whoever wrote the PR:
    a raw line break there would start a new line in the job log, where a line beginning with
    `::` is a workflow command (`::add-mask::`, `::stop-commands::`, `::error::`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message without its source snippet: the snippet quotes the file's own line,
    which may begin (after the indentation the runner strips) with a workflow command."""
    if isinstance(exc, yaml.MarkedYAMLError):
        text = ", ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            text += f" (line {mark.line + 1}, column {mark.column + 1})"
        return printable(text)
    return printable(str(exc))


def read_config_data(path: Path | None, repo: Path | None) -> tuple[Any, str] | None:
    """The parsed YAML of the config and where it came from; None when there is no file at
    the default path (an explicit `path` must exist)."""
    explicit = path is not None
    target = path if path is not None else DEFAULT_CONFIG_PATH
    if repo is not None and not target.is_absolute():
        target = repo / target
    if not target.exists():
        if explicit:
            raise ConfigError(f"{target}: configuration file not found")
        return None
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read configuration: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{target}: not valid YAML: {yaml_problem(exc)}") from None
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructors raise plain ValueError for a well-formed but impossible value
        # (`2020-02-30`, `!!float abc`), not a YAMLError.
        raise ConfigError(f"{target}: not valid YAML: {printable(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{target}: not valid YAML: nested too deeply") from None
    return data, str(target)
