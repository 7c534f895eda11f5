"""Read `.github/gatebot.yml`, validate it, turn every problem into a ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.model import GatebotConfig
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


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + printable(str(item)))
    path = "".join(parts) or "(top level)"
    # The runner strips leading spaces before looking for `::`, so a top-level key such as
    # `::stop-commands::x` would still start a workflow command on the problem line.
    return "\\x3a" + path[1:] if path.startswith(":") else path


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


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        # Model-level validators report an empty loc; pydantic appends internal tags we drop.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        value = err.get("input")
        quiet = err["type"] in ("missing", "extra_forbidden") or isinstance(value, dict)
        shown = "" if quiet or repr(value) in msg else f" (got {value!r})"
        lines.append(f"  {_key_path(loc)}: {printable(msg + shown)}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "configuration") -> GatebotConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return GatebotConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    except RecursionError:
        # A structure nested deeper than Python's recursion limit (validating or showing it).
        raise ConfigError(f"{source}: the configuration is nested too deeply") from None


def load_config(path: Path | None = None, repo: Path | None = None) -> GatebotConfig:
    """Load the config. An explicit `path` must exist; the default path is optional."""
    explicit = path is not None
    target = path if path is not None else DEFAULT_CONFIG_PATH
    if repo is not None and not target.is_absolute():
        target = repo / target
    if not target.exists():
        if explicit:
            raise ConfigError(f"{target}: configuration file not found")
        return GatebotConfig()
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
    return parse_config(data, str(target))
