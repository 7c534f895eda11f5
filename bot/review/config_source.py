"""Which configuration a review is judged by.

By default `.github/gatebot.yml` is read from the base of base...head (`ChangeRange.policy_sha`),
not from the working tree: the working tree of a pull request is the PR's own head, and a PR
must not be able to loosen the gate it is judged by (e.g. `blocking_severity: critical`) in the
same change. Not the merge base either: the PR picks it by where its branch starts, and an old
fork point would bring back an older, looser policy of the base branch.
A change to the config file itself is a protected path and needs a human (triage).

An explicit `--config FILE` is read as given (the operator chose it) — unless it names a file
inside the repository while the working tree is the PR's (GitHub Actions): the operator chose
the *name*, but the bytes there are the PR's own (the Action's `config:` input, or a workflow's
`gatebot review --config` naming a file of the repository). Such a file is read as committed at
the base, like the default one, and is protected like it (docs/security.md, §6.10).
"""

from __future__ import annotations

import os
import re
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


def raw_from_commit(
    repo: pygit2.Repository, commit_sha: str, path: str = DEFAULT_CONFIG_PATH.as_posix()
) -> tuple[object, str]:
    """The parsed YAML of `path` (default `.github/gatebot.yml`) at `commit_sha` (None when
    absent) and a label naming where it came from. For callers that overlay settings before
    validating (the Action's inputs, bot/github/overlay.py)."""
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


def from_commit(
    repo: pygit2.Repository, commit_sha: str, path: str = DEFAULT_CONFIG_PATH.as_posix()
) -> ConfigSource:
    """`path` (default `.github/gatebot.yml`) as committed at `commit_sha`; defaults when it
    is not there."""
    raw, label = raw_from_commit(repo, commit_sha, path)
    return ConfigSource(parse_config(raw, label), label)  # None (absent, empty): defaults


def path_in_repository(path: Path, repo: Path, git_repo: pygit2.Repository) -> str | None:
    """The path, as git spells it, of the file `path` names inside the repository's working
    tree (relative paths are relative to `repo`, as `--config` reads them); None when it names
    a file outside (the runner's temporary directory, an absolute path elsewhere).

    Compared both as written and with links resolved: the working tree is the PR's, and a
    link there must not make a file inside look like one outside."""
    if git_repo.workdir is None:
        return None
    target = path if path.is_absolute() else repo / path
    roots = {Path(os.path.abspath(git_repo.workdir)), Path(os.path.realpath(git_repo.workdir))}
    for candidate in (Path(os.path.abspath(target)), Path(os.path.realpath(target))):
        for root in roots:
            try:
                inside = candidate.relative_to(root)
            except ValueError:
                continue
            if inside.parts:
                return inside.as_posix()
    return None


def literal_glob(path: str) -> str:
    """A gitignore pattern matching exactly `path` from the root (wildcards escaped)."""
    return "/" + re.sub(r"([\\*?\[\]])", r"\\\1", path)


def protecting(config: GatebotConfig, path: str) -> GatebotConfig:
    """`config` with the file it was read from among the protected paths: a change to the
    policy needs a human, wherever the workflow keeps it."""
    protected = config.review.protected
    pattern = literal_glob(path)
    if pattern in protected.paths:
        return config
    paths = protected.model_copy(update={"paths": [*protected.paths, pattern]})
    review = config.review.model_copy(update={"protected": paths})
    return config.model_copy(update={"review": review})


def for_review(
    git_repo: pygit2.Repository,
    repo: Path,
    policy_sha: str,
    config_path: Path | None,
    *,
    workspace_is_the_prs: bool,
) -> ConfigSource:
    """The configuration `gatebot review` judges base...head by: `.github/gatebot.yml` at the
    base, or `config_path`. When the working tree is the PR's (inside GitHub Actions) and
    `config_path` names a file in it, that file as committed at the base, protected."""
    if config_path is None:
        return from_commit(git_repo, policy_sha)
    named = path_in_repository(config_path, repo, git_repo)
    if named is None or not workspace_is_the_prs:
        source = from_file(config_path, repo)
    else:
        source = from_commit(git_repo, policy_sha, named)
    if named is None:
        return source
    return ConfigSource(protecting(source.config, named), source.label)


def from_file(path: Path, repo: Path) -> ConfigSource:
    """An explicit `--config FILE` (relative paths are inside the repository, as before)."""
    shown = path if path.is_absolute() else repo / path
    return ConfigSource(load_config(path, repo), f"{shown} (--config)")
