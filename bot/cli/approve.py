"""`gatebot approve`: a maintainer approves a pull request's head commit (workflow_dispatch).

The approval core is bot/github/approval.py (`approve`), shared with the PR-comment command.
"""

from __future__ import annotations

import os

import click

from bot.errors import UsageError

# The events whose actor GitHub authorises to trigger this command: workflow_dispatch needs
# write access to the repository (docs.github.com, "Manually running a workflow").
TRUSTED_EVENTS = ("workflow_dispatch",)


@click.command("approve")
@click.option("--pr", "pr_number", type=click.IntRange(min=1), required=True, help="PR number")
@click.option(
    "--sha",
    required=True,
    help="the head commit you read (its full 40-digit SHA); must be the PR's head now",
)
def approve_command(pr_number: int, sha: str) -> None:
    """Approve a pull request's head commit: the gate's check run on it becomes success.

    Runs inside a GitHub Actions workflow_dispatch workflow only (the `gatebot approve`
    workflow `gatebot init` writes), so that GitHub has authorised who triggered it; that
    person (GITHUB_TRIGGERING_ACTOR) must have write access, must not be a bot and must not be
    the pull request's author. The approval is recorded on the check run of that commit, with
    who, when and the run's link, and does not carry over to a new push.

    Exit codes: 0 approved, 1 refused (the reason is printed), 2 usage error.
    """
    from bot.github.approval import approve
    from bot.github.checks import client
    from bot.github.integration import ActionsContext
    from bot.github.outputs import append_file, write_outputs

    env = os.environ
    ctx = ActionsContext.from_env(env)  # masks the token before anything is printed
    if ctx is None:
        raise UsageError("approve only runs inside GitHub Actions (GITHUB_ACTIONS=true)")
    s = ctx.settings
    if s.event_name not in TRUSTED_EVENTS:
        raise UsageError(
            f"approve runs from a workflow_dispatch workflow, not from {s.event_name or '?'}",
            hint="use the `gatebot approve` workflow that `gatebot init` writes",
        )
    approver = env.get("GITHUB_TRIGGERING_ACTOR", "").strip() or env.get("GITHUB_ACTOR", "")
    if not approver.strip():
        raise UsageError("GITHUB_TRIGGERING_ACTOR / GITHUB_ACTOR is not set")
    if ctx.api is None or s.repository is None:
        raise UsageError("approve needs GITHUB_REPOSITORY and a token (GITHUB_TOKEN)")
    repo = client(ctx.api).get_repo(s.repository)
    result = approve(
        repo,
        check_name=s.check_name,
        pr_number=pr_number,
        sha=sha,
        approver=approver.strip(),
        via="workflow_dispatch",
        run_url=s.details_url(),
    )
    a = result.approval
    click.echo(f"approved #{pr_number} at {a.sha} by {a.approver}: {result.note}")
    if s.step_summary is not None:
        from bot.github.approval import approval_note

        append_file(s.step_summary, f"## ✅ gatebot approval\n\n{approval_note(a)}\n")
    if s.output is not None:
        write_outputs(s.output, {"check-run-url": result.check_run_url})


COMMANDS: list[click.Command] = [approve_command]
