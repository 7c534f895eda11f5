"""The `audit:` section (key names in shared/DESIGN.md §4 are binding)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from bot.config.base import Section


class ServiceConfig(Section):
    port: int | None = Field(None, ge=1, le=65535)
    systemd: str | None = None
    pidfile: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ServiceConfig:
        chosen = [k for k in ("port", "systemd", "pidfile") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of port, systemd or pidfile")
        return self


class GtwConfig(Section):
    endpoint: str = Field(pattern=r"^(tcp|ipc|inproc)://.+")
    socket: Literal["REQ", "DEALER"] = "REQ"
    request: Any = Field(default_factory=lambda: {"type": "ping"})
    expect: Any = Field(default_factory=lambda: {"type": "pong"})
    pings: int = Field(5, ge=1, le=1000)
    budget_ms: float = Field(50, gt=0)
    timeout_ms: int = Field(1000, ge=10)
    retries: int = Field(3, ge=1, le=20)


class AuditConfig(Section):
    min_python: str = Field("3.10", pattern=r"^\d+\.\d+$")
    min_free_disk_mb: int = Field(500, ge=0)
    min_free_memory_mb: int = Field(0, ge=0)
    binaries: list[str] = Field(default_factory=list)
    imports: list[str] = Field(default_factory=list)
    service: ServiceConfig | None = None
    gtw: GtwConfig | None = None
    layer_timeout_s: float = Field(20.0, gt=0)
