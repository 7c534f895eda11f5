"""The root configuration model. `GatebotConfig.model_json_schema()` is the published schema."""

from __future__ import annotations

from pydantic import Field

from bot.config.audit import AuditConfig
from bot.config.base import Section
from bot.config.deploy import DeployConfig
from bot.config.metrics import MetricsConfig
from bot.config.review import ReviewConfig


class GatebotConfig(Section):
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
