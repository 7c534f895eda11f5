"""Configuration: pydantic models (the published JSON Schema) and the loader.

Read once, at the edge (the CLI), then passed down as values. No global settings object.
The names below load on first use: importing a light module of this package (the environment
names, the file reader) does not build the pydantic models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config.load import DEFAULT_CONFIG_PATH, load_config, parse_config
    from bot.config.model import GatebotConfig

__all__ = ["DEFAULT_CONFIG_PATH", "GatebotConfig", "load_config", "parse_config"]

_HOME = {
    "DEFAULT_CONFIG_PATH": "bot.config.source",
    "load_config": "bot.config.load",
    "parse_config": "bot.config.load",
    "GatebotConfig": "bot.config.model",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.config' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
