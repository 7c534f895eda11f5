"""The `metrics:` section: history bounds and alert thresholds."""

from __future__ import annotations

from pydantic import Field

from bot.config.base import Section


class MetricsConfig(Section):
    history_max_records: int = Field(1000, ge=10)
