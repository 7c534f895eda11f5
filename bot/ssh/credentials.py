"""Turn a target's key and host-key settings into asyncssh objects, without ever printing them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from bot.config.deploy import TargetConfig
from bot.errors import ConfigError
from bot.ssh.sources import pinned_hosts, read_source


@dataclass(frozen=True)
class Credentials:
    client_key: asyncssh.SSHKey = field(repr=False)
    known_hosts: asyncssh.SSHKnownHosts = field(repr=False)
    # Which host patterns the pinned entries cover: shown in errors, never the key material.
    pinned_hosts: tuple[str, ...] = ()


def load_credentials(
    target_name: str, target: TargetConfig, env: Mapping[str, str], base: Path
) -> Credentials:
    """Read the SSH key and the pinned known_hosts entries; `base` resolves relative files."""
    prefix = f"deploy.targets.{target_name}"
    key_text = read_source(
        f"{prefix}.identity", target.identity_file, target.identity_env, env, base
    )
    try:
        key = asyncssh.import_private_key(key_text)
    except (asyncssh.KeyImportError, ValueError):
        # Never echo the material: only say which setting held an unusable key.
        raise ConfigError(f"{prefix}: the SSH private key could not be parsed") from None
    hosts_text = read_source(
        f"{prefix}.known_hosts", target.known_hosts_file, target.known_hosts_env, env, base
    )
    try:
        known = asyncssh.import_known_hosts(hosts_text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise ConfigError(f"{prefix}: known_hosts content is not valid: {exc}") from None
    pinned = pinned_hosts(hosts_text)
    if not pinned:
        raise ConfigError(f"{prefix}: known_hosts has no entries; host keys must be pinned")
    return Credentials(client_key=key, known_hosts=known, pinned_hosts=pinned)
