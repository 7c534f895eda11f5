"""Read `.github/gatebot.yml`, validate it, turn every problem into a ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.model import GatebotConfig
from bot.config.source import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH
from bot.config.source import printable as printable
from bot.config.source import read_config_data
from bot.config.source import yaml_problem as yaml_problem
from bot.errors import ConfigError


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not item.strip() or item != item.strip():
            # A blank or space-padded key would print as nothing (`   : unknown key`): quoted.
            parts.append(f"[{printable(repr(item))}]")
        else:
            parts.append(("." if parts else "") + printable(str(item)))
    path = "".join(parts) or "(top level)"
    # The runner strips leading spaces before looking for `::`, so a top-level key such as
    # `::stop-commands::x` would still start a workflow command on the problem line.
    return "\\x3a" + path[1:] if path.startswith(":") else path


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
    found = read_config_data(path, repo)
    if found is None:
        return GatebotConfig()
    data, source = found
    return parse_config(data, source)
