"""The free stages of a review: diff, triage and the local reviewer, before any model call.

Every changed file comes out as a FileState (bot/review/runstate.py) with its decision, its
texts and hashes, its local findings (secrets scanned in every changed byte, whatever triage
decided) and the naive baseline's token count. A large change is shared between two cores
(bot/review/fanout.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pygit2

from bot.config.review import ReviewConfig
from bot.git import attributes, blobs
from bot.git.diff import (
    ChangedFile,
    ChangeRange,
    count_changes,
    diff_files,
    hunks_between,
    open_repo,
)
from bot.review import content, keys, local, secretscan, triage
from bot.review.cost import baseline_file_tokens
from bot.review.fanout import fork_map, usable_cores
from bot.review.models import Finding
from bot.review.pysyntax import Parses
from bot.review.runstate import FileState
from bot.review.types import FileChange

# From this many changed files on, the free stages are shared with a forked worker: below,
# forking and sending the results back cost more than the second core saves.
PARALLEL_MIN_FILES = 200


def free_stages(
    repo_path: Path,
    git_repo: pygit2.Repository,
    rng: ChangeRange,
    review: ReviewConfig,
    workers: int | None,
    keep_content: bool = True,
) -> list[FileState]:
    """Diff, triage and the local reviewer: on a large change, shared between two cores.

    `keep_content=False` (no model will see the files): a worker sends back its files without
    their texts and hunks, which nothing after these stages reads then (half the pickling)."""
    parts = workers or 1
    if workers is None:
        large = count_changes(git_repo, rng.merge_base_sha, rng.head_sha) >= PARALLEL_MIN_FILES
        parts = 2 if large and usable_cores() >= 2 else 1

    def share(k: int) -> list[FileState]:
        repo = git_repo if k == 0 else open_repo(repo_path)  # libgit2 state is per process
        parses = Parses()  # triage and the syntax check share parse results
        files = _load_files(repo, rng, review, parses, (k, parts))
        _run_local(files, review, parses)
        for f in files:
            if f.change.change != "deleted" and f.new_text is not None:
                f.baseline_tokens = baseline_file_tokens(f.path, f.new_text)
        if k != 0 and not keep_content:
            for f in files:
                f.old_text = f.new_text = None
                f.change = replace(f.change, hunks=())
        return files

    files = [f for part in fork_map(share, parts) for f in part]
    files.sort(key=lambda f: f.path)
    return files


def _load_files(
    repo: pygit2.Repository,
    rng: ChangeRange,
    review: ReviewConfig,
    parses: Parses,
    part: tuple[int, int] = (0, 1),
) -> list[FileState]:
    changed = diff_files(
        repo,
        rng.merge_base_sha,
        rng.head_sha,
        review.context_lines,
        keep_bytes=review.max_file_bytes,
        part=part,
        max_blob_bytes=review.max_file_bytes,
    )
    rules = triage.Rules.from_config(review)
    paths = [p for c in changed for p in (c.change.path, c.change.old_path) if p]
    # Policy comes from the base, never from the PR's head (bot.git.attributes).
    view = (
        attributes.policy_view(repo)
        if attributes.may_have_attributes(repo, rng.policy_sha, paths)
        else None
    )

    def attrs_of(path: str) -> triage.Attributes:
        if view is None:
            return triage.Attributes()
        base = rng.policy_sha
        return triage.Attributes(
            generated=attributes.attribute_set(view, base, path, "linguist-generated"),
            vendored=attributes.attribute_set(view, base, path, "linguist-vendored"),
            diff_disabled=attributes.diff_disabled(view, base, path),
        )

    files: list[FileState] = []
    link_at = blobs.link_reader(repo, rng.head_sha)  # links resolve through the head's tree
    for c in changed:
        change = c.change
        new_data = c.new_data
        if c.too_large and change.new_oid and change.new_size <= review.max_file_bytes:
            # Only the old side is over the limit: the new one can still be reviewed whole.
            new_data = blobs.read_bytes(repo, change.new_oid, review.max_file_bytes)
        contents = triage.Contents(c.old_data, new_data, c.too_large, c.unreadable)
        old_attrs = attrs_of(change.old_path) if change.old_path else None
        decision = triage.triage(
            change, contents, rules, attrs_of(change.path), parses, old_attrs=old_attrs
        )
        if decision.whole_file:
            change = replace(change, hunks=hunks_between(None, new_data, review.context_lines))
        old_text = new_text = None
        if not change.binary:  # each blob was read once, by the diff
            old_text = blobs.as_text(c.old_data)
            new_text = blobs.as_text(new_data)
        f = FileState(
            change,
            old_text,
            new_text,
            decision,
            old_hash=keys.content_hash(c.old_data),
            new_hash=keys.content_hash(new_data),
            python=content.language(change.path, new_data) == "python",
            not_reviewed=decision.not_reviewed,
        )
        if decision.skip_reason is not None:
            f.status = "skipped"
        f.local_findings += decision.findings
        if f.status != "skipped":  # the checks that need the bytes: the encoding, a link target
            if review.local.syntax and f.python:
                f.local_findings += local.check_encoding(change, new_data)
            f.local_findings += local.check_symlink(change, new_data, link_at)
        files.append(f)
        if review.local.secrets and change.change != "deleted":
            f.local_findings += _scan_secrets(repo, c, change, f)
    return files


def _scan_secrets(
    repo: pygit2.Repository, c: ChangedFile, change: FileChange, f: FileState
) -> list[Finding]:
    """Every changed byte, whatever triage decided: the added lines of a diff; a whole blob
    (binary content, or over review.max_file_bytes: streamed) against its old side."""
    if change.hunks or (not change.binary and not c.too_large and f.new_text is not None):
        return local.check_secrets(change)
    if change.new_mode == content.SUBMODULE_MODE or c.unreadable or change.new_oid is None:
        return local.check_secrets(change)  # the path only: there are no bytes to read
    new: Iterable[bytes]
    old: Iterable[bytes] | None
    if c.too_large:
        new = blobs.stream(repo, change.new_oid)
        old = blobs.stream(repo, change.old_oid) if change.old_oid else None
    elif c.new_data is not None:
        new = secretscan.chunked(c.new_data)
        old = secretscan.chunked(c.old_data) if c.old_data is not None else None
    else:
        return local.check_secrets(change)
    try:
        return local.check_secrets_in_blob(change, new, old)
    except (ValueError, OSError) as exc:
        return [*local.check_secrets(change), local.scan_failed(change, str(exc))]


def _run_local(files: list[FileState], review: ReviewConfig, parses: Parses) -> None:
    for f in files:
        if f.change.change == "deleted":
            continue
        if f.status != "skipped":
            f.local_findings += local.review_file(
                f.change,
                f.new_text,
                review,
                parses,
                old_text=f.old_text,
                python=f.python,
                secrets=False,  # scanned in _load_files, for every file
            )
            continue
        # Skipped and not-reviewed files cost no model call, but a huge blob is still worth
        # knowing about (their secrets were scanned with the rest, in _load_files).
        huge = triage.too_large(f.change, review.max_file_bytes)
        if review.local.large_files and (f.change.binary or huge):
            f.local_findings += local.check_large_file(f.change, None, review)
