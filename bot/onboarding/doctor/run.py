"""Run every doctor check in order and collect one report (secrets cut out of every line)."""

from __future__ import annotations

import time

from bot.config import GatebotConfig
from bot.onboarding.doctor.cache_check import check_cache
from bot.onboarding.doctor.config_check import check_config
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.gemini_check import check_gemini
from bot.onboarding.doctor.github_check import check_github
from bot.onboarding.doctor.model import CheckResult, DoctorReport, skipped
from bot.onboarding.doctor.targets_check import check_targets


def _target_names(config: GatebotConfig, only: str | None) -> list[str]:
    names = list(config.deploy.targets)
    if only is None:
        return names
    config.deploy.target(only)  # an unknown name is a usage error listing the known ones
    return [only]


def run_doctor(ctx: DoctorContext, *, target: str | None = None) -> DoctorReport:
    start = time.monotonic()
    config_result, config = check_config(ctx)
    checks: list[CheckResult] = [config_result]
    # With a broken file the other checks still run, on the defaults, so one run shows it all.
    effective = config or GatebotConfig()
    checks += check_gemini(ctx, effective)
    checks += check_github(ctx)
    checks.append(check_cache(ctx, effective))
    if config is None:
        checks.append(skipped("targets", "deploy targets", "skipped: the configuration is invalid"))
    else:
        checks += check_targets(ctx, config, _target_names(config, target))
    secrets = ctx.secrets()
    return DoctorReport([c.redacted(secrets) for c in checks], duration_s=time.monotonic() - start)
