"""What a target's releases go through besides their files (docs/deploy.md, docs/configuration.md):
hooks around the deploy's steps, an environment file per release written from the runner's
secrets, and a health-gated switch. Key names are a public contract."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from bot.config.base import Section

#: The hook points a configuration can name (the deploy's steps have more, for code).
HOOK_POINTS = ("before_build", "after_build", "before_switch", "after_switch", "after_rollback")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names gatebot itself puts in a release (bot/deploy/layout.py): never the env file's.
_RESERVED = (".venv", ".gatebot-release.json", ".gatebot-index.json")


class HookCommand(Section):
    run: str = Field(min_length=1, description="shell command run on the host")
    timeout_s: float = Field(300.0, gt=0, description="stopped (with its children) after this")


def _one(value: str | dict[str, Any]) -> HookCommand:
    """A lone command (the shorthand for a list of one), validated here so that an error names
    the key the user wrote (`hooks.before_build`), not an index that is not in the file."""
    try:
        return HookCommand.model_validate({"run": value} if isinstance(value, str) else value)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"] if e["loc"] else e["msg"]
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"not a hook command ({problems})") from None


def _commands(value: Any) -> Any:
    """A command, or a list of commands each a string or {run, timeout_s}."""
    if isinstance(value, str | dict):
        return [_one(value)]
    if isinstance(value, list):
        return [{"run": v} if isinstance(v, str) else v for v in value]
    return value


class HooksConfig(Section):
    """Commands run on the host at a step of the deploy, in order; one that fails (non-zero
    exit or timeout) fails the deploy there."""

    before_build: list[HookCommand] = Field(
        default_factory=list, description="before a new release is built; in the target's path"
    )
    after_build: list[HookCommand] = Field(
        default_factory=list,
        description="in the new release once complete; a failure removes it, nothing goes live",
    )
    before_switch: list[HookCommand] = Field(
        default_factory=list,
        description="in the release about to go live (also on rollback); a failure leaves"
        " `current` where it was",
    )
    after_switch: list[HookCommand] = Field(
        default_factory=list,
        description="in the release just made live (also on rollback); a failure rolls back",
    )
    after_rollback: list[HookCommand] = Field(
        default_factory=list,
        description="in the release a rollback made live (explicit or automatic)",
    )

    @field_validator(*HOOK_POINTS, mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return _commands(v)

    def of(self, point: str) -> list[HookCommand]:
        commands: list[HookCommand] = getattr(self, point)
        return commands


class EnvConfig(Section):
    """An environment file per release, written on the host from the runner's environment."""

    file: str = Field(
        ".env", description="where the file appears in each release (a link to its own copy)"
    )
    secrets: list[str] = Field(
        default_factory=list,
        description="names of environment variables on the runner (GitHub secrets passed with"
        " `env:`) whose values go in the file; a missing one is an error",
    )
    vars: dict[str, str] = Field(default_factory=dict, description="plain values")

    @field_validator("file")
    @classmethod
    def _inside(cls, v: str) -> str:
        norm = posixpath.normpath(v)
        if v.startswith("/") or norm.startswith("..") or norm in (".", "") or "\0" in v:
            raise ValueError(f"must be a path inside the release, got {v!r}")
        if norm.split("/")[0] in _RESERVED:
            raise ValueError(f"{v!r} is a name gatebot uses in every release")
        return norm

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        if len(set(v)) != len(v):
            raise ValueError("a name is listed twice")
        return v

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if "\0" in value:
                raise ValueError(f"{name}: a value cannot hold a NUL byte")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> EnvConfig:
        both = sorted(set(self.secrets) & set(self.vars))
        if both:
            raise ValueError(f"named both as a secret and a var: {', '.join(both)}")
        return self


class ZmqCheck(Section):
    endpoint: str = Field(
        "tcp://127.0.0.1:{port}",
        pattern=r"^(tcp|ipc)://.+",
        description="the release's own endpoint; {port} and {socket} are the release's",
    )
    request: Any = Field(default_factory=lambda: {"type": "ping"}, description="sent as JSON")
    expect: Any = Field(
        default_factory=lambda: {"type": "pong"}, description="keys and values the reply holds"
    )


class HealthCheck(Section):
    """Exactly one way to tell that a started release is healthy."""

    http: str | None = Field(
        None,
        description="a path (e.g. /healthz, asked on the release's port or socket) or an"
        " http:// URL; any 2xx or 3xx answer is healthy",
    )
    tcp: bool = Field(False, description="the release's port or socket accepts a connection")
    command: str | None = Field(
        None, description="a command run in the release directory; exit 0 is healthy"
    )
    zmq: ZmqCheck | None = Field(
        None, description="a ZeroMQ request/reply with the release (its ready signal)"
    )
    gtw: bool = Field(
        False, description="the audit's GTW round trip (audit.gtw), from the release's venv"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> HealthCheck:
        chosen = [k for k in ("http", "command", "zmq") if getattr(self, k) is not None] + [
            k for k in ("tcp", "gtw") if getattr(self, k)
        ]
        if len(chosen) != 1:
            raise ValueError("set exactly one of http, tcp, command, zmq or gtw")
        if self.http is not None and not (
            self.http.startswith("/") or self.http.startswith("http://")
        ):
            raise ValueError("http: a path starting with / or an http:// URL")
        return self


class HealthConfig(Section):
    """Start the new release beside the live one, wait until it is healthy, then switch and
    stop the old one. Without this section: the `restart` command, then the audit."""

    start: str = Field(
        min_length=1,
        description="command that runs the release, started in its directory and kept running"
        " in the background ($GATEBOT_PORT / $GATEBOT_SOCKET say where it listens)",
    )
    stop: str | None = Field(
        None,
        description="command that stops a release ($GATEBOT_RELEASE); default: SIGTERM to the"
        " process group gatebot started, SIGKILL after stop_timeout_s",
    )
    ports: list[int] = Field(
        default_factory=list,
        description="ports to alternate between: a release gets one the live release does not hold",
    )
    socket: str | None = Field(
        None, description="a Unix socket path inside the release (each release has its own)"
    )
    check: HealthCheck
    timeout_s: float = Field(60.0, gt=0, description="never healthy by then: never switched to")
    interval_s: float = Field(0.5, gt=0, description="between two checks")
    stop_timeout_s: float = Field(10.0, gt=0, description="grace before SIGKILL")

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        if any(not 1 <= p <= 65535 for p in v) or len(set(v)) != len(v):
            raise ValueError("ports are distinct numbers 1-65535")
        return v

    @field_validator("socket")
    @classmethod
    def _socket_inside(cls, v: str | None) -> str | None:
        if v is None:
            return v
        norm = posixpath.normpath(v)
        if v.startswith("/") or norm.startswith("..") or norm in (".", ""):
            raise ValueError(f"must be a path inside the release, got {v!r}")
        return norm

    @model_validator(mode="after")
    def _where(self) -> HealthConfig:
        needs_place = self.check.tcp or (self.check.http or "").startswith("/")
        if needs_place and not self.ports and self.socket is None:
            raise ValueError("check.http as a path and check.tcp need ports or socket")
        endpoint = self.check.zmq.endpoint if self.check.zmq else ""
        if "{port}" in endpoint and not self.ports:
            raise ValueError("check.zmq.endpoint names {port}: set ports")
        if "{socket}" in endpoint and self.socket is None:
            raise ValueError("check.zmq.endpoint names {socket}: set socket")
        if self.ports and len(self.ports) < 2:
            raise ValueError("ports: give two (or more), so a release can start beside another")
        return self
