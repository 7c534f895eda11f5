"""`gatebot review`: review base...head, write verdict.json / summary.md / metrics.json."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot import localstate
from bot.cli.options import cache_dir_option, config_option, repo_option
from bot.config.review import SEVERITY_ORDER
from bot.errors import GateFailed, UsageError
from bot.inert import printable
from bot.redact import redact

if TYPE_CHECKING:
    from bot.github.integration import ActionsContext
    from bot.review.models import Verdict
    from bot.review.pipeline import ReviewRun

log = logging.getLogger(__name__)

_STYLE = {"pass": "green", "fail": "red", "neutral": "yellow"}


def _print_table(verdict: Verdict, out_dir: Path, config_label: str) -> None:
    m = verdict.metrics
    # No markup, no highlighting: file names and config paths are data (`[bold]x` stays text).
    console = Console(stderr=False, highlight=False, markup=False)
    table = Table(title=f"gatebot review: {verdict.verdict}", title_style=_STYLE[verdict.verdict])
    table.add_column("")
    table.add_column("value", justify="right")
    provider = verdict.provider + (" (degraded)" if verdict.degraded else "")
    rows = [
        ("provider", provider),
        ("config", config_label),
        (
            "files",
            f"{m.files_total} ({m.files_reviewed} reviewed, "
            f"{m.files_cached} cached, {m.files_skipped} skipped, "
            f"{m.files_not_reviewed} not reviewed)",
        ),
        ("findings", str(sum(len(f.findings) for f in verdict.files))),
        ("model calls", f"{m.api_calls} (baseline {m.baseline_api_calls})"),
        ("cost", f"${m.cost_usd:.4f} (baseline ${m.baseline_cost_usd:.4f})"),
        ("cache hit rate", f"{m.cache_hit_rate:.0%}"),
        ("outputs", str(out_dir)),
    ]
    if verdict.uncovered:
        rows.append(("not reviewed", str(len(verdict.uncovered))))
    if verdict.needs_human:
        rows.append(("needs a human", ", ".join(verdict.needs_human)))
    for k, v in rows:
        # Each cell made inert: no escape sequence, bidi override or workflow command.
        table.add_row(k, Text(printable(redact(v))))
    console.print(table)


@click.command("review")
@repo_option("the git repository to review")
@click.option("--base", help="base revision (branch, tag, sha, HEAD~1); from the event in Actions")
@click.option("--head", help="head revision; from the event in Actions")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("gatebot-out"),
    show_default=True,
    help="where verdict.json, summary.md and metrics.json go",
)
@config_option(
    "configuration file (default: .github/gatebot.yml as committed at the base "
    "of base...head, optional; the PR's own copy is not used)"
)
@cache_dir_option("review cache directory (default: $GATEBOT_CACHE_DIR or .gatebot-cache)")
@click.option(
    "--blocking-severity",
    type=click.Choice(SEVERITY_ORDER),
    help="override review.blocking_severity",
)
def review_command(
    repo: Path,
    base: str | None,
    head: str | None,
    out_dir: Path,
    config_path: Path | None,
    cache_dir: Path | None,
    blocking_severity: str | None,
) -> None:
    """Review the change base...head (like a pull request) and decide pass / fail / neutral.

    Fail closed: a changed file no reviewer covered fails the gate unless the base config opts
    into fail-open (`review.unreviewed: neutral`, for outages only). Inside GitHub Actions a
    run without a model key is "not reviewed by a model"; outside, the local checks decide.

    Exit codes: 0 pass (or neutral where the config opted in), 1 the gate failed the change or
    could not review all of it, 2 usage or configuration error, 3 infrastructure.
    """
    env = dict(os.environ)
    ctx = _actions_context(env)
    if ctx is not None and ctx.settings.event_name == "issue_comment":
        # A `/gatebot ...` comment on a pull request (docs/action.md, "PR commands").
        from bot.github.pr_commands import run_comment

        def review_pull(pull_base: str, pull_head: str) -> Verdict:
            _, run = run_gate(
                ctx,
                env,
                repo,
                pull_base,
                pull_head,
                out_dir,
                config_path,
                cache_dir,
                blocking_severity,
            )
            return run.verdict

        code = run_comment(ctx, repo, review_pull)
        if code != 0:
            raise click.exceptions.Exit(code)
        if not ctx.delivered:  # help, approve, or not a command: answered, nothing reviewed
            ctx.nothing_to_review("an issue_comment that asked for no review")
        return
    if ctx is not None:
        base, head = ctx.resolve_range(base, head)
        if ctx.skip is not None:
            ctx.nothing_to_review(ctx.skip)
            return
    if not base or not head:
        raise UsageError("both --base and --head are required outside GitHub Actions")
    code, run = run_gate(
        ctx, env, repo, base, head, out_dir, config_path, cache_dir, blocking_severity
    )
    if code == 1:
        raise GateFailed("the review gate failed the change: " + "; ".join(run.reasons))
    if code != 0:
        raise click.exceptions.Exit(code)


def _actions_context(env: dict[str, str]) -> ActionsContext | None:
    """The Actions context inside a workflow; outside, None without loading PyGithub (its
    import alone is a few hundred milliseconds of a local review)."""
    if env.get("GITHUB_ACTIONS", "").strip().lower() != "true":
        return None
    from bot.github.integration import ActionsContext

    return ActionsContext.from_env(env)


def run_gate(
    ctx: ActionsContext | None,
    env: dict[str, str],
    repo: Path,
    base: str,
    head: str,
    out_dir: Path,
    config_path: Path | None,
    cache_dir: Path | None,
    blocking_severity: str | None,
) -> tuple[int, ReviewRun]:
    """Review base...head, deliver the verdict (check run, comments, outputs); the exit code."""
    # Imported here, not at the top: `gatebot` registers every command at start-up, and the
    # review pipeline (pygit2, detect-secrets, pydantic models) is only needed to review.
    from bot.git.diff import change_range, open_repo
    from bot.github.approval import apply_approval, approved_summary
    from bot.github.crash import closed_on_error
    from bot.localstate import resolve_cache_dir
    from bot.review import config_source
    from bot.review import rules as repo_rules
    from bot.review.pipeline import run_review, write_outputs
    from bot.review.tokens import CalibrationTracker, load_calibration, save_calibration

    git_repo = open_repo(repo)
    rng = change_range(git_repo, base, head)
    # The PR's own head (the working tree, inside Actions) must not choose the rules it is
    # judged by, not even through a --config that names a file in it.
    source = config_source.for_review(
        git_repo, repo, rng.policy_sha, config_path, workspace_is_the_prs=ctx is not None
    )
    config = source.config
    if blocking_severity:
        config = config.model_copy(
            update={
                "review": config.review.model_copy(update={"blocking_severity": blocking_severity})
            }
        )

    # The repository's review rules, from the same trusted side as the config: the base.
    loaded = repo_rules.load(git_repo, rng.policy_sha, config.review)
    config = config.model_copy(update={"review": config.review.with_repo_rules(loaded.sections)})
    label = repo_rules.label(source.label, loaded)
    for warning in loaded.warnings:
        log.warning("%s", warning)

    # Imported here: the provider pulls in the Gemini SDK, which other commands do not need.
    from bot.review.providers import select_provider

    cache = localstate.claim(resolve_cache_dir(cache_dir, env))
    learned = load_calibration(cache)
    tracker = CalibrationTracker(learned)
    provider = select_provider(env, config.review, calibration=tracker)
    if ctx is not None:
        ctx.start(rng.head_sha)
    # From here on a check run may exist: whatever happens, it is completed (never left in
    # progress) and verdict.json is written (bot/github/crash.py).
    with closed_on_error(ctx, base_sha=rng.base_sha, head_sha=rng.head_sha, out_dir=out_dir):
        run = run_review(
            repo,
            base,
            head,
            config,
            cache,
            provider,
            env=env,
            config_label=label,
            # Inside Actions a missing key is a fork PR or a missing secret: fail closed.
            require_model=ctx is not None,
        )
        if tracker.value.samples > learned.samples:
            try:
                save_calibration(cache, tracker.value)
            except (OSError, ValueError) as exc:  # ValueError: restored.StateError (refused)
                log.warning("token calibration not saved: %s", exc)
        pr = ctx.pr if ctx is not None else None
        if pr is not None and pr.action == "synchronize" and pr.before:
            # A push to an open PR: what changed since the previous head, and what was sent.
            from bot.github.incremental import since, since_md, with_since

            section = since_md(since(repo, pr.before, run.verdict), run.verdict)
            run.summary_md = with_since(run.summary_md, section)
        if ctx is not None:
            # A maintainer may have approved this head (bot/github/approval.py): honour it.
            approval = ctx.approval(rng.head_sha)
            if approval is not None and run.verdict.conclusion != "success":
                run = replace(
                    run,
                    verdict=apply_approval(run.verdict, approval),
                    summary_md=approved_summary(approval, run.summary_md),
                )
        write_outputs(run, localstate.claim(out_dir))
        _print_table(run.verdict, out_dir, label)

        verdict = run.verdict
        if ctx is not None:
            from bot.github.inline_publish import post_inline

            post_inline(ctx, verdict, config.review.comments, repo)
            code = ctx.finish(
                verdict, run.summary_md, out_dir, cache_dir=cache, metrics=config.metrics
            )
        else:
            code = 0 if verdict.conclusion in ("success", "neutral") else 1
    return code, run


COMMANDS: list[click.Command] = [review_command]
