"""Where a target's SSH key and pinned host keys come from (a file or an environment variable),
read as text for either SSH client; never printed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.errors import ConfigError


def read_source(
    name: str, file_value: str | None, env_value: str | None, env: Mapping[str, str], base: Path
) -> str:
    if env_value is not None:
        text = env.get(env_value)
        if not text:
            raise ConfigError(f"{name}: environment variable {env_value} is not set or empty")
        return text
    assert file_value is not None  # the config model guarantees one of the two
    path = Path(file_value).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None


def pinned_hosts(text: str) -> tuple[str, ...]:
    hosts: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            hosts.append(line.split()[0])
    return tuple(hosts)
