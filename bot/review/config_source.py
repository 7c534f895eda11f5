"""Which configuration a review is judged by.

By default `.github/gatebot.yml` is read from the base of base...head (`ChangeRange.policy_sha`),
not from the working tree: the working tree of a pull request is the PR's own head, and a PR
must not be able to loosen the gate it is judged by (e.g. `blocking_severity: critical`) in the
same change. Not the merge base either: the PR picks it by where its branch starts, and an old
fork point would bring back an older, looser policy of the base branch.
A change to the config file itself is a protected path and needs a human (triage).

An explicit `--config FILE` is read as given (the operator chose it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2
import yaml

from bot.config.load import DEFAULT_CONFIG_PATH, load_config, parse_config
from bot.config.model import GatebotConfig
from bot.errors import ConfigError
from bot.git import blobs

# A configuration file is a few kilobytes; anything far larger is a mistake or an attack.
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ConfigSource:
    config: GatebotConfig
    label: str  # for the summary: which file at which commit, or "defaults"


def raw_from_commit(repo: pygit2.Repository, commit_sha: str) -> tuple[object, str]:
    """The parsed YAML of `.github/gatebot.yml` at `commit_sha` (None when absent) and a label
    naming where it came from. For callers that overlay settings before validating (the
    Action's inputs, bot/github/overlay.py)."""
    path = DEFAULT_CONFIG_PATH.as_posix()
    where = f"{path} @ base {commit_sha[:7]}"
    try:
        data = blobs.read_path_at(repo, commit_sha, path, MAX_CONFIG_BYTES)
    except ValueError as exc:  # NotAFile, too large
        raise ConfigError(f"{where}: cannot read configuration: {exc}") from None
    if data is None:
        return None, f"defaults (no {path} @ base {commit_sha[:7]})"
    try:
        return yaml.safe_load(data.decode("utf-8")), where
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: cannot read configuration: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None


def from_commit(repo: pygit2.Repository, commit_sha: str) -> ConfigSource:
    """`.github/gatebot.yml` as committed at `commit_sha`; defaults when it has none."""
    raw, label = raw_from_commit(repo, commit_sha)
    return ConfigSource(parse_config(raw, label), label)  # None (absent, empty): defaults


def from_file(path: Path, repo: Path) -> ConfigSource:
    """An explicit `--config FILE` (relative paths are inside the repository, as before)."""
    shown = path if path.is_absolute() else repo / path
    return ConfigSource(load_config(path, repo), f"{shown} (--config)")
