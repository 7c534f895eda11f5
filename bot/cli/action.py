"""Commands the composite Action runs around `gatebot review` (see action.yml)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml

from bot.config.load import DEFAULT_CONFIG_PATH
from bot.errors import ConfigError, UsageError
from bot.github.cachekey import cache_key
from bot.github.event import PR_EVENTS, load_pull_request, refuse_untrusted_checkout
from bot.github.outputs import write_outputs
from bot.github.overlay import apply_overrides


def _read_raw_config(path: Path | None, repo: Path) -> tuple[object, str]:
    explicit = path is not None
    target = path if path is not None else DEFAULT_CONFIG_PATH
    if not target.is_absolute():
        target = repo / target
    if not target.exists():
        if explicit:
            raise ConfigError(f"{target}: configuration file not found")
        return None, "defaults"
    try:
        return yaml.safe_load(target.read_text(encoding="utf-8")), str(target)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read configuration: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{target}: not valid YAML: {exc}") from None


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
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="the repository whose configuration is reviewed with",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="configuration file (default: .github/gatebot.yml, optional)",
)
@click.option(
    "--base-ref",
    help="base branch for the key outside pull_request events (default: $GITHUB_REF_NAME)",
)
@click.option(
    "--effective-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the configuration with the action's overrides (GATEBOT_MODEL_*, …) here",
)
def cache_key_command(
    repo: Path,
    config_path: Path | None,
    base_ref: str | None,
    effective_config: Path | None,
) -> None:
    """Print the actions/cache key and restore keys for the review cache.

    The key covers the gatebot version, the models, the prompt and the rules, so a change to
    any of them starts a fresh cache. Inside Actions the values also go to $GITHUB_OUTPUT
    (key, restore-keys, config: the file `gatebot review --config` should read, or empty).
    On pull_request_target it refuses a workspace that contains the PR head (see docs/action.md).
    """
    env = os.environ
    raw, source = _read_raw_config(config_path, repo)
    data, config, used = apply_overrides(raw, env, source)
    review_config = str(config_path) if config_path is not None else ""
    if used and effective_config is not None:
        effective_config.parent.mkdir(parents=True, exist_ok=True)
        effective_config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        review_config = str(effective_config)

    event_name = env.get("GITHUB_EVENT_NAME", "")
    event_path = env.get("GITHUB_EVENT_PATH", "")
    pr_number: int | None = None
    if event_name in PR_EVENTS and event_path:
        pr = load_pull_request(event_name, Path(event_path))
        refuse_untrusted_checkout(pr, _head_in_workspace(repo, pr.head_sha))
        pr_number, ref = pr.number, pr.base_ref
    else:
        ref = base_ref or env.get("GITHUB_REF_NAME", "") or "local"
    key = cache_key(
        config.review,
        ref,
        pr_number,
        env.get("GITHUB_RUN_ID", "") or "local",
        env.get("GITHUB_RUN_ATTEMPT", "") or "1",
    )
    click.echo(f"key: {key.key}")
    for k in key.restore_keys:
        click.echo(f"restore-key: {k}")
    output = env.get("GITHUB_OUTPUT", "")
    if env.get("GITHUB_ACTIONS") == "true" and output:
        write_outputs(
            Path(output),
            {
                "key": key.key,
                "restore-keys": "\n".join(key.restore_keys),
                "config": review_config,
                "cache-max-mb": str(config.review.cache_max_mb),
            },
        )


@click.command("check-abandon")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="the reviewed repository (to resolve --head)",
)
@click.option("--head", help="head revision outside pull_request events")
@click.option("--reason", required=True, help="why the review did not finish (shown on the check)")
def check_abandon_command(repo: Path, head: str | None, reason: str) -> None:
    """Close the check run an unfinished review left in progress, as neutral (Actions only)."""
    from bot.git.diff import open_repo, resolve_commit
    from bot.github.integration import ActionsContext

    ctx = ActionsContext.from_env(os.environ)
    if ctx is None:
        raise UsageError("check-abandon only runs inside GitHub Actions (GITHUB_ACTIONS=true)")
    # Only the head matters here; the base argument just satisfies resolve_range.
    _, head_ref = ctx.resolve_range("unused", head)
    head_sha = (
        ctx.pr.head_sha if ctx.pr is not None else str(resolve_commit(open_repo(repo), head_ref).id)
    )
    closed = ctx.abandon(head_sha, reason)
    click.echo("check run closed as neutral" if closed else "no check run left open")


COMMANDS: list[click.Command] = [cache_key_command, check_abandon_command]
