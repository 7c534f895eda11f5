"""Configuration: pydantic models (the published JSON Schema) and the loader.

Read once, at the edge (the CLI), then passed down as values. No global settings object.
"""

from bot.config.load import DEFAULT_CONFIG_PATH, load_config, parse_config
from bot.config.model import GatebotConfig

__all__ = ["DEFAULT_CONFIG_PATH", "GatebotConfig", "load_config", "parse_config"]
