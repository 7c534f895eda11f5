"""The report `gatebot init` prints: what it wrote, then what a person still has to do."""

from __future__ import annotations

from bot.onboarding.init import (
    CHECK_NAME,
    GEMINI_KEY_ENV,
    KNOWN_HOSTS_ENV,
    SSH_KEY_ENV,
    FileState,
    InitOptions,
    InitResult,
)

_VERB = {
    FileState.CREATE: "create",
    FileState.OVERWRITE: "overwrite",
    FileState.UNCHANGED: "unchanged",
    FileState.KEEP: "exists, differs: kept (use --force to overwrite)",
}


def file_lines(result: InitResult, *, dry_run: bool) -> list[str]:
    prefix = "would " if dry_run else ""
    lines = []
    for action in result.actions:
        verb = _VERB[action.state]
        if action.state in (FileState.CREATE, FileState.OVERWRITE):
            verb = prefix + verb
        lines.append(f"  {verb:<12} {action.file.path}  ({action.file.purpose})")
    return lines


def next_steps(options: InitOptions) -> list[str]:
    steps = [
        "Next steps:",
        "1. Add the repository secrets (Settings → Secrets and variables → Actions):",
        f"     {GEMINI_KEY_ENV}       a Gemini API key (gh secret set {GEMINI_KEY_ENV})",
    ]
    if options.target is not None:
        steps += [
            f"     {SSH_KEY_ENV}      the deploy private key (see above)",
            f"     {KNOWN_HOSTS_ENV}  the verified known_hosts line(s) (see above)",
        ]
    steps += [
        "2. Commit the files above and open a pull request: the review runs on it.",
        "3. Protect the default branch (Settings → Branches → Add rule), enable",
        f'   "Require status checks to pass" and require the check named exactly: {CHECK_NAME}',
        "   (with a merge queue, the same check also runs on every merge group).",
        "   On a pull request, comment `/gatebot help` for the review and approve commands.",
    ]
    if options.target is not None:
        label = options.target.runner_label
        steps += [
            f"4. Register a self-hosted runner that can reach {options.target.host} over SSH,",
            f"   with the label {label} (./config.sh --url … --token … --labels {label}).",
        ]
    steps += [f"{len([s for s in steps if s[:1].isdigit()]) + 1}. Check everything: gatebot doctor"]
    return steps
