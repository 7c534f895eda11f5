"""The Action's inputs that override configuration, applied to the raw YAML of the repo's config.

Only the keys an input names are touched, so everything else in `.github/gatebot.yml` keeps
its meaning; the result is validated with the same loader as the file itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from bot.config.load import parse_config
from bot.config.model import GatebotConfig
from bot.errors import ConfigError

# Action input (as GATEBOT_* env) -> (section, key...) in the configuration.
OVERRIDES: dict[str, tuple[str, ...]] = {
    "GATEBOT_MODEL_LITE": ("review", "models", "lite"),
    "GATEBOT_MODEL_STANDARD": ("review", "models", "standard"),
    "GATEBOT_MODEL_DEEP": ("review", "models", "deep"),
    "GATEBOT_BLOCKING_SEVERITY": ("review", "blocking_severity"),
    "GATEBOT_CACHE_MAX_MB": ("review", "cache_max_mb"),
}


def apply_overrides(
    raw: Any, env: Mapping[str, str], source: str
) -> tuple[dict[str, Any], GatebotConfig, list[str]]:
    """Returns (the overlaid raw mapping, its validated config, the override names used)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    data = copy.deepcopy(raw)
    used: list[str] = []
    for var, path in OVERRIDES.items():
        value = env.get(var, "").strip()
        if not value:
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: `{part}` must be a mapping to apply {var}")
            node = child
        node[path[-1]] = int(value) if value.isdigit() else value
        used.append(var)
    label = f"{source} with action inputs {', '.join(used)}" if used else source
    return data, parse_config(data, label), used
