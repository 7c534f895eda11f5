"""The `deploy:` section (key names are a public contract: docs/configuration.md)."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config.base import Section
from bot.config.lifecycle import HOOK_POINTS, EnvConfig, HealthConfig, HooksConfig
from bot.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TargetConfig(Section):
    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str
    path: str = Field(
        description="absolute directory on the host holding releases/, current, shared/"
    )
    identity_file: str | None = None
    identity_env: str | None = None
    known_hosts_file: str | None = None
    known_hosts_env: str | None = None
    lock_file: str | None = "requirements.txt"
    install: str | None = "pip install -r requirements.txt"
    shared: list[str] = Field(default_factory=list)
    restart: str | None = None
    keep_releases: int = Field(5, ge=2)
    python: str = Field("python3", description="interpreter on the host used to create venvs")
    connect_timeout_s: float = Field(10.0, gt=0)
    venv_args: str = Field(
        "", description="extra arguments to `python -m venv`, e.g. --system-site-packages"
    )
    lock_wait_s: float = Field(
        30.0, ge=0, description="how long a deploy waits for another deploy's lock, then fails"
    )
    install_timeout_s: float = Field(900.0, gt=0, description="limit for the install command")
    restart_timeout_s: float = Field(120.0, gt=0, description="limit for the restart command")
    prepare_next: bool = Field(
        True,
        description="after a deploy or rollback, the host links the next release's seed from"
        " the live one in the background (one hard link per file, no data), so the next deploy"
        " starts from it instead of linking every file while you wait",
    )
    hooks: HooksConfig | None = Field(
        None,
        description="hook points set here replace deploy.hooks' for this target ([] turns one off)",
    )
    env: EnvConfig | None = Field(
        None, description="an environment file per release, from the runner's secrets"
    )
    health: HealthConfig | None = Field(
        None,
        description="a health-gated switch instead of restart-then-audit: start the new release"
        " beside the live one, switch once it is healthy, then stop the old one",
    )
    ssh_client: Literal["auto", "openssh", "asyncssh"] = Field(
        "auto",
        description="how gatebot deploy reaches the host. auto: OpenSSH's `ssh` command when it"
        " is on PATH (it connects while gatebot starts and encrypts on another core), else"
        " asyncssh in-process; the audit and doctor always use asyncssh",
    )
    ssh_persist_s: float = Field(
        60.0,
        ge=0,
        description="with the openssh client, keep the connection (OpenSSH's ControlPersist, as"
        " Ansible does) and a copy of the host program (on a loopback port, reached only with a"
        " key this runner holds) up this long after a command, so the next gatebot command to"
        " this host skips the key exchange, the login shell and the interpreter's start; on the"
        " runner, a resident gatebot (a private socket, this user only) stays up as long, so the"
        " next deploy, rollback, releases or unlock skips gatebot's own start-up too;"
        " 0: keep nothing",
    )
    verify: Literal["index", "full"] = Field(
        "index",
        description="how the host checks a new release against the git tree before it goes"
        " live. index: every file is checked, but a file whose id the host already knows (hashed"
        " as it was written, or hard-linked from a checked release with the same inode, size and"
        " mtime) is not read again; full: every file is read and hashed",
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute path on the host, got {v!r}")
        norm = posixpath.normpath(v)
        if norm == "/":
            raise ValueError("must not be the filesystem root")
        return norm

    @field_validator("shared")
    @classmethod
    def _relative_names(cls, v: list[str]) -> list[str]:
        for item in v:
            norm = posixpath.normpath(item)
            if item.startswith("/") or norm.startswith("..") or norm == ".":
                raise ValueError(f"shared entries are paths inside the release, got {item!r}")
        return v

    @model_validator(mode="after")
    def _one_way_to_go_live(self) -> TargetConfig:
        if self.health is not None and self.restart:
            raise ValueError(
                "set either restart (restart, then audit) or health (start beside, check, "
                "switch, stop the old one), not both"
            )
        names = [posixpath.normpath(s) for s in self.shared]
        if self.env is not None and self.env.file in names:
            raise ValueError(f"env.file {self.env.file!r} is also a shared entry")
        return self

    def linked(self) -> tuple[str, ...]:
        """What gatebot links into every release besides the tree: the shared entries and the
        env file (never compared with the git tree, never seeded from the live release)."""
        names = tuple(posixpath.normpath(s) for s in self.shared)
        return (*names, self.env.file) if self.env is not None else names

    @model_validator(mode="after")
    def _one_source_each(self) -> TargetConfig:
        if (self.identity_file is None) == (self.identity_env is None):
            raise ValueError("set exactly one of identity_file or identity_env (the SSH key)")
        if (self.known_hosts_file is None) == (self.known_hosts_env is None):
            raise ValueError(
                "set exactly one of known_hosts_file or known_hosts_env: host keys are pinned, "
                "never trusted on first use"
            )
        return self


class RolloutConfig(Section):
    batch_size: int = Field(1, ge=1)
    max_fail_percentage: float = Field(0, ge=0, le=100)


class DeployConfig(Section):
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    hooks: HooksConfig = Field(
        default_factory=HooksConfig,
        description="commands run on every target's host around the deploy's steps",
    )

    def hooks_for(self, name: str) -> HooksConfig:
        """The deploy-wide hooks, with the points target `name` sets itself replaced."""
        own = self.target(name).hooks
        if own is None:
            return self.hooks
        merged = {
            p: own.of(p) if p in own.model_fields_set else self.hooks.of(p) for p in HOOK_POINTS
        }
        return HooksConfig.model_validate(
            {p: [c.model_dump() for c in v] for p, v in merged.items()}
        )

    @field_validator("targets")
    @classmethod
    def _names(cls, v: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"target name {name!r}: use letters, digits, '_', '.', '-'")
        return v

    def target(self, name: str) -> TargetConfig:
        """The target `name`; a usage error listing the configured ones otherwise (the one
        lookup deploy, audit and doctor share)."""
        if name not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none configured"
            raise UsageError(
                f"unknown target {name!r}: no such deploy target (deploy.targets: {known})"
            )
        return self.targets[name]
