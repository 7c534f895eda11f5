"""Doctor check: the configuration file loads and validates (the error names the key)."""

from __future__ import annotations

from bot.config import DEFAULT_CONFIG_PATH, GatebotConfig, load_config
from bot.errors import ConfigError
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, failed, passed

TITLE = "configuration"


def check_config(ctx: DoctorContext) -> tuple[CheckResult, GatebotConfig | None]:
    shown = ctx.config_path or DEFAULT_CONFIG_PATH
    try:
        config = load_config(ctx.config_path, ctx.root)
    except ConfigError as exc:
        # The loader's message is "<file>: invalid configuration" then one line per key.
        lines = [ln.strip() for ln in exc.message.splitlines() if ln.strip()]
        problems = "; ".join(lines[1:]) or lines[0]
        return (
            failed(
                "config",
                TITLE,
                f"{shown}: {problems}",
                f"edit {shown}: fix or remove the key named above (docs/configuration.md)",
            ),
            None,
        )
    where = ctx.config_path or ctx.root / DEFAULT_CONFIG_PATH
    if not where.exists():
        return passed("config", TITLE, f"no {shown}: every setting at its default"), config
    targets = ", ".join(config.deploy.targets) or "none"
    return passed("config", TITLE, f"{shown} is valid (deploy targets: {targets})"), config
