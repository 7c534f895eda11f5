"""Bring a pull request's head into the workspace as git objects only, never checked out.

A `/gatebot review` comment runs in the base repository's trusted context (secrets, a write
token), so the PR's files must never be in the working tree, where a tool or the config loader
could read them. `git fetch` stores the head (GitHub's `refs/pull/N/head`) and the base branch
under `refs/gatebot/pull/N/` and nothing else: no checkout, no tags, no submodules, no hooks
(fetch runs none). The review then reads both commits through pygit2.

The token (needed for private repositories: actions/checkout with `persist-credentials: false`
leaves none behind) travels as an HTTP header scoped to GITHUB_SERVER_URL through git's
`GIT_CONFIG_*` environment (never argv, which other processes can list), and only when `origin`
is that server: a remote elsewhere never receives it.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pygit2

from bot.errors import InfrastructureError, UsageError
from bot.git.diff import open_repo

FETCH_TIMEOUT_S = 300


def _remote_url(repo: pygit2.Repository) -> str:
    try:
        return str(repo.remotes["origin"].url or "")
    except KeyError:
        raise UsageError(
            "the workspace has no `origin` remote to fetch the pull request from",
            hint="check out the repository with actions/checkout first",
        ) from None


def _auth_env(url: str, server_url: str, token: str | None) -> dict[str, str]:
    server = server_url.rstrip("/") + "/"
    if not token or not url.startswith(server):
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{server}.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


def _has_commit(repo: pygit2.Repository, sha: str) -> bool:
    try:
        return isinstance(repo[sha].peel(pygit2.Commit), pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return False


def _git_fetch(workdir: Path, refspecs: list[str], env: Mapping[str, str]) -> str:
    cmd = [
        "git",
        "-C",
        str(workdir),
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "origin",
        *refspecs,
    ]
    try:
        proc = subprocess.run(
            cmd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfrastructureError(f"git fetch did not run: {exc}") from None
    return "" if proc.returncode == 0 else (proc.stderr.strip()[-500:] or f"exit {proc.returncode}")


def fetch_pull(
    workdir: Path,
    number: int,
    base_ref: str,
    head_sha: str,
    base_sha: str,
    *,
    server_url: str,
    token: str | None,
) -> None:
    """Make `head_sha` and `base_sha` present in the repository at `workdir`, objects only."""
    repo = open_repo(workdir)
    if not pygit2.reference_is_valid_name(f"refs/heads/{base_ref}"):
        raise UsageError(f"the pull request's base branch is not a valid ref name: {base_ref!r}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG_")}
    env.update(GIT_TERMINAL_PROMPT="0", **_auth_env(_remote_url(repo), server_url, token))
    ns = f"refs/gatebot/pull/{number}"
    problem = _git_fetch(
        workdir, [f"+refs/pull/{number}/head:{ns}/head", f"+refs/heads/{base_ref}:{ns}/base"], env
    )
    repo = open_repo(workdir)  # see the objects the fetch wrote
    for sha in (head_sha, base_sha):
        if not _has_commit(repo, sha):
            # The ref moved since the API answered, or the base is older than the branch tip's
            # history we got: ask for the commit itself (GitHub serves reachable commits).
            problem = _git_fetch(workdir, [f"+{sha}:{ns}/{sha}"], env) or problem
            repo = open_repo(workdir)
        if not _has_commit(repo, sha):
            raise InfrastructureError(
                f"commit {sha[:12]} of pull request #{number} could not be fetched"
                + (f": {problem}" if problem else "")
            )
