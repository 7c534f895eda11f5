"""Everything a doctor run reads from outside: where the repo is, the environment, time limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.env import SECRETS

# Names whose values never appear in doctor output, whatever an error message echoes.
SECRET_ENV = SECRETS


@dataclass(frozen=True)
class DoctorContext:
    root: Path  # repository work tree
    env: Mapping[str, str] = field(repr=False, default_factory=dict)
    config_path: Path | None = None  # --config; None: .github/gatebot.yml if present
    timeout_s: float = 5.0  # per network check

    @property
    def in_actions(self) -> bool:
        return self.env.get("GITHUB_ACTIONS") == "true"

    def secrets(self) -> list[str]:
        return [self.env[name] for name in SECRET_ENV if self.env.get(name)]
