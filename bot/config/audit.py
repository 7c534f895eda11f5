"""The `audit:` section (key names are a public contract: docs/configuration.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bot.config.base import Section

# The nine audit layers, in the order they run and are reported. A public contract (the audit
# report, docs/audit.md): do not reorder. Defined here so config does not import audit.
LAYER_IDS: tuple[str, ...] = (
    "network",
    "ssh",
    "host",
    "release",
    "integrity",
    "dependencies",
    "imports",
    "service",
    "gtw",
)


class ServiceConfig(Section):
    port: int | None = Field(
        None, ge=1, le=65535, description="a port that must accept connections on the host"
    )
    systemd: str | None = Field(None, description="a systemd unit that must be active")
    pidfile: str | None = Field(
        None, description="pid file on the host; relative paths are under the target's path"
    )
    systemd_user: bool = Field(
        False, description="check the unit with `systemctl --user` (a user service)"
    )
    wait_s: float = Field(
        5.0,
        ge=0,
        description="how long to wait for the service to come up (the audit follows a restart)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ServiceConfig:
        chosen = [k for k in ("port", "systemd", "pidfile") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of port, systemd or pidfile")
        return self


class GtwConfig(Section):
    endpoint: str = Field(
        pattern=r"^(tcp|ipc|inproc)://.+", description="the GTW's ZeroMQ endpoint, seen from Inf"
    )
    socket: Literal["REQ", "DEALER"] = Field("REQ", description="socket type of the probe")
    request: Any = Field(
        default_factory=lambda: {"type": "ping"}, description="sent as JSON on each ping"
    )
    expect: Any = Field(
        default_factory=lambda: {"type": "pong"},
        description="the JSON reply must contain these keys and values",
    )
    pings: int = Field(5, ge=1, le=1000, description="round trips measured")
    budget_ms: float = Field(50, gt=0, description="the p50 round trip must not exceed this")
    max_ms: float | None = Field(
        None, gt=0, description="the slowest round trip must not exceed this (default 3x budget)"
    )
    timeout_ms: int = Field(1000, ge=10, description="lazy pirate: wait per try for a reply")
    retries: int = Field(3, ge=1, le=20, description="lazy pirate: tries per ping")

    @property
    def max_budget_ms(self) -> float:
        return self.max_ms if self.max_ms is not None else 3 * self.budget_ms


class AuditConfig(Section):
    min_python: str = Field(
        "3.10", pattern=r"^\d+\.\d+$", description="lowest Python of the host interpreter"
    )
    min_free_disk_mb: int = Field(500, ge=0, description="free disk at the target's path")
    min_free_memory_mb: int = Field(0, ge=0, description="available memory (0: not checked)")
    binaries: list[str] = Field(
        default_factory=list, description="commands that must be on the host's PATH"
    )
    imports: list[str] = Field(
        default_factory=list, description="modules that must import in the release's venv"
    )
    service: ServiceConfig | None = None
    gtw: GtwConfig | None = None
    layer_timeout_s: float = Field(20.0, gt=0, description="upper bound of each audit layer")
    timeouts: dict[str, float] = Field(
        default_factory=dict,
        description="per-layer upper bounds in seconds, by layer id (e.g. {gtw: 5})",
    )

    @field_validator("timeouts")
    @classmethod
    def _layer_ids(cls, v: dict[str, float]) -> dict[str, float]:
        for key, seconds in v.items():
            if key not in LAYER_IDS:
                raise ValueError(f"unknown layer {key!r}; layers: {', '.join(LAYER_IDS)}")
            if seconds <= 0:
                raise ValueError(f"{key}: a timeout must be > 0 seconds")
        return v

    def timeout_of(self, layer_id: str) -> float:
        return self.timeouts.get(layer_id, self.layer_timeout_s)
