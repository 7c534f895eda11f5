"""Commands the composite Action runs around `gatebot review` (see action.yml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
import yaml

from bot.cli.options import config_option, repo_option
from bot.config.load import printable, yaml_problem
from bot.errors import ConfigError, UsageError
from bot.github.cachedir import prepare_action_cache_dir
from bot.github.cachekey import cache_key, job_scope, workflow_identity
from bot.github.event import (
    MERGE_GROUP,
    PR_EVENTS,
    load_merge_group,
    load_pull_request,
    refuse_untrusted_checkout,
)
from bot.github.outlet import ActionsOutlet
from bot.github.overlay import apply_overrides

if TYPE_CHECKING:
    from bot.github.checks import Conclusion


def _read_raw_config(path: Path, repo: Path) -> tuple[object, str]:
    """An explicit `--config FILE` (the operator's choice), read as given."""
    target = path if path.is_absolute() else repo / path
    if not target.exists():
        raise ConfigError(f"{target}: configuration file not found")
    try:
        return yaml.safe_load(target.read_text(encoding="utf-8")), str(target)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read configuration: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{target}: not valid YAML: {yaml_problem(exc)}") from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML constructors (`2020-02-30`, `!!float abc`) and deep nesting, as in load_config.
        raise ConfigError(f"{target}: not valid YAML: {printable(str(exc))}") from None


def _trusted_raw_config(
    config_path: Path | None, repo: Path, base: str | None, head: str | None
) -> tuple[object, str, str | None]:
    """The raw configuration the Action's overrides are laid over, where it came from, and
    the path of the file in the repository when the configuration is one (to protect it).

    Never the workspace's copy of a file in the repository: on a pull request the workspace
    is the PR's own head, and the effective file written from it is what `gatebot review
    --config` then trusts, so the PR would choose its own gate again. Like `gatebot review`,
    read `.github/gatebot.yml` — or the `config` input, when it names a file in the
    repository — as committed at the base of base...head (`ChangeRange.policy_sha`); with no
    base known there is no trusted copy, so the overrides go on the defaults. A `config` input
    outside the repository (written by an earlier step) is read as given.
    """
    from bot.git.diff import change_range, open_repo
    from bot.review.config_source import path_in_repository, raw_from_commit

    if config_path is not None:
        try:
            git_repo = open_repo(repo)
        except UsageError:
            return (*_read_raw_config(config_path, repo), None)
        named = path_in_repository(config_path, repo, git_repo)
        if named is None or not base:
            return (*_read_raw_config(config_path, repo), named)
        rng = change_range(git_repo, base, head or "HEAD")
        return (*raw_from_commit(git_repo, rng.policy_sha, named), named)
    if not base:
        return None, "defaults (no base revision to read .github/gatebot.yml from)", None
    git_repo = open_repo(repo)
    rng = change_range(git_repo, base, head or "HEAD")
    return (*raw_from_commit(git_repo, rng.policy_sha), None)


def _protect(data: dict[str, object], named: str) -> None:
    """Add the configuration file's own path to `review.protected.paths` of the raw mapping
    (already validated, so every level present is a mapping)."""
    from bot.config.review import DEFAULT_PROTECTED
    from bot.review.config_source import literal_glob

    review = cast("dict[str, object]", data.setdefault("review", {}))
    protected = cast("dict[str, object]", review.setdefault("protected", {}))
    paths = cast("list[str]", protected.setdefault("paths", list(DEFAULT_PROTECTED)))
    if literal_glob(named) not in paths:
        paths.append(literal_glob(named))


def _head_in_workspace(repo: Path, sha: str) -> bool:
    """Is `sha` the checked-out commit, or an ancestor of it (a merge ref checkout)?"""
    import pygit2

    from bot.git.diff import open_repo

    r = open_repo(repo)
    if r.head_is_unborn:
        return False
    head = r.head.target
    if str(head) == sha:
        return True
    if sha not in r:  # not even fetched: certainly not checked out
        return False
    return bool(r.descendant_of(head, pygit2.Oid(hex=sha)))


@click.command("cache-key")
@repo_option("the repository whose configuration is reviewed with")
@config_option("configuration file (default: .github/gatebot.yml, optional)")
@click.option(
    "--base-ref",
    help="base branch for the key outside pull_request events (default: $GITHUB_REF_NAME)",
)
@click.option(
    "--base",
    help="base revision, as for `gatebot review` (from the event on pull requests); the "
    "configuration is read at the base of base...head",
)
@click.option("--head", help="head revision, as for `gatebot review` (default: HEAD)")
@click.option(
    "--effective-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the configuration with the action's overrides (GATEBOT_MODEL_*, …) here",
)
@click.option(
    "--cache-dir",
    "cache_dir",
    default=None,
    help="the action's cache-dir input: prepare it (emptied when inside the workspace) and "
    "output it as actions/cache's `path` (default .gatebot-cache in $GITHUB_WORKSPACE)",
)
def cache_key_command(
    repo: Path,
    config_path: Path | None,
    base_ref: str | None,
    base: str | None,
    head: str | None,
    effective_config: Path | None,
    cache_dir: str | None,
) -> None:
    """Print the actions/cache key and restore keys for the review cache.

    The key covers the gatebot version, the models, the prompt and the rules, so a change to
    any of them starts a fresh cache. Inside Actions the values also go to $GITHUB_OUTPUT
    (key, restore-keys, config: the file `gatebot review --config` should read, or empty).
    On pull_request_target it refuses a workspace that contains the PR head (see docs/action.md).
    The configuration is the one `gatebot review` judges by: `.github/gatebot.yml` at the merge
    base (never the workspace's copy, which on a pull request is the PR's own), or --config.
    The key is scoped to the workflow, the job, the check name ($GATEBOT_CHECK_NAME) and --repo,
    so different jobs never share or race for a cache. With --cache-dir, the outputs also
    carry `path` (for actions/cache, the same on every runner) and `cache-dir` (absolute).
    """
    env = os.environ
    event_name = env.get("GITHUB_EVENT_NAME", "")
    event_path = env.get("GITHUB_EVENT_PATH", "")
    pr_number: int | None = None
    if event_name in PR_EVENTS and event_path:
        pr = load_pull_request(event_name, Path(event_path))
        refuse_untrusted_checkout(pr, _head_in_workspace(repo, pr.head_sha))
        pr_number, ref = pr.number, pr.base_ref
        base, head = base or pr.base_sha, head or pr.head_sha
    elif event_name == "issue_comment":
        # A PR command runs on the default branch's checkout (the trusted base): its config.
        ref = env.get("GITHUB_REF_NAME", "") or "local"
        base = head = "HEAD"
    elif event_name == MERGE_GROUP and event_path:
        group = load_merge_group(Path(event_path))
        ref = group.base_branch  # the queue's target branch: its caches are the ones to reuse
        base, head = base or group.base_sha, head or group.head_sha
    else:
        ref = base_ref or env.get("GITHUB_REF_NAME", "") or "local"
        # action.yml passes its `base` input (what `review --base` gets) as --base-ref.
        base = base or base_ref

    raw, source, named = _trusted_raw_config(config_path, repo, base, head)
    data, config, used = apply_overrides(raw, env, source)
    review_config = str(config_path) if config_path is not None else ""
    if named is not None:
        _protect(data, named)
    if used and effective_config is not None:
        effective_config.parent.mkdir(parents=True, exist_ok=True)
        effective_config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        review_config = str(effective_config)
    scope = job_scope(
        workflow_identity(env.get("GITHUB_WORKFLOW_REF", ""), env.get("GITHUB_WORKFLOW", "")),
        env.get("GITHUB_JOB", ""),
        env.get("GATEBOT_CHECK_NAME", "").strip(),
        str(repo),
    )
    key = cache_key(
        config.review,
        ref,
        pr_number,
        env.get("GITHUB_RUN_ID", "") or "local",
        env.get("GITHUB_RUN_ATTEMPT", "") or "1",
        scope=scope,
    )
    values = {
        "key": key.key,
        "restore-keys": "\n".join(key.restore_keys),
        "config": review_config,
        "cache-max-mb": str(config.review.cache_max_mb),
    }
    if cache_dir is not None:
        workspace = Path(env.get("GITHUB_WORKSPACE", "") or Path.cwd())
        prepared = prepare_action_cache_dir(cache_dir, workspace)
        values["path"] = prepared.path_input
        values["cache-dir"] = str(prepared.directory)
        click.echo(f"cache dir: {prepared.directory} (actions/cache path: {prepared.path_input})")
    click.echo(f"key: {key.key}")
    for k in key.restore_keys:
        click.echo(f"restore-key: {k}")
    ActionsOutlet.from_env(env).outputs(values)


@click.command("check-abandon")
@repo_option("the reviewed repository (to resolve --head)")
@click.option("--head", help="head revision outside pull_request events")
@click.option("--reason", required=True, help="why the review did not finish (shown on the check)")
@click.option(
    "--conclusion",
    type=click.Choice(["failure", "timed_out", "cancelled"]),
    default="failure",
    show_default=True,
    help="the conclusion to close with; none of them passes a required check",
)
def check_abandon_command(repo: Path, head: str | None, reason: str, conclusion: str) -> None:
    """Close the check run an unfinished review left in progress (Actions only).

    Fail closed: the check ends `failure` (or `timed_out` / `cancelled`), never neutral, which
    GitHub counts as passing. The title says why; the summary links the run's log.
    """
    from bot.git.diff import open_repo, resolve_commit
    from bot.github.integration import ActionsContext

    ctx = ActionsContext.from_env(os.environ)
    if ctx is None:
        raise UsageError("check-abandon only runs inside GitHub Actions (GITHUB_ACTIONS=true)")
    if ctx.settings.event_name == "issue_comment" and ctx.settings.event_path is not None:
        # A `/gatebot review` that did not finish: its check is on the PR's head.
        from bot.github.comment_event import load_comment

        outlet = ctx.pulls()
        if outlet is None:
            raise UsageError("check-abandon needs a GitHub token to look up the pull request")
        head_sha = outlet.pull(load_comment(ctx.settings.event_path).number).head_sha
        closed = ctx.abandon(head_sha, reason, cast("Conclusion", conclusion))
        click.echo(f"check run closed as {conclusion}" if closed else "no check run left open")
        return
    # Only the head matters here; the base argument just satisfies resolve_range.
    _, head_ref = ctx.resolve_range("unused", head)
    head_sha = (
        ctx.pr.head_sha if ctx.pr is not None else str(resolve_commit(open_repo(repo), head_ref).id)
    )
    closed = ctx.abandon(head_sha, reason, cast("Conclusion", conclusion))
    click.echo(f"check run closed as {conclusion}" if closed else "no check run left open")


COMMANDS: list[click.Command] = [cache_key_command, check_abandon_command]
