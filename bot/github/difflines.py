"""The PR diff as GitHub shows it, for the files inline comments may land on.

GitHub's "Files changed" view is the diff from the merge base to the head with three lines of
context; a review comment is accepted only inside one of its hunks. This reads the two blobs
of each file that has findings and computes exactly those hunks (bot/git/diff.py's
`hunks_between`), plus the new file's lines (a suggestion replaces some of them).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pygit2

from bot.git.diff import change_range, hunks_between, open_repo
from bot.github.inline import FileLines
from bot.review.models import FileResult

GITHUB_CONTEXT_LINES = 3
MAX_BLOB_BYTES = 2_000_000


def _blob(tree: pygit2.Tree, path: str) -> bytes | None:
    try:
        obj = tree[path]
    except KeyError:
        return None
    if obj.type != pygit2.GIT_OBJECT_BLOB or obj.filemode == pygit2.GIT_FILEMODE_LINK:
        return None
    blob = obj.peel(pygit2.Blob)
    if blob.size > MAX_BLOB_BYTES or blob.is_binary:
        return None
    return bytes(blob.data)


def pr_diff(
    repo_path: Path, base: str, head: str, files: Iterable[FileResult]
) -> dict[str, FileLines]:
    """FileLines of each of `files` with findings that changed between merge base and head."""
    wanted = [fr for fr in files if any(f.line is not None for f in fr.findings)]
    if not wanted:
        return {}
    repo = open_repo(repo_path)
    rng = change_range(repo, base, head)
    old_tree = repo[rng.merge_base_sha].peel(pygit2.Commit).tree
    new_tree = repo[rng.head_sha].peel(pygit2.Commit).tree
    out: dict[str, FileLines] = {}
    for fr in wanted:
        new = _blob(new_tree, fr.path)
        if new is None:
            continue
        old = _blob(old_tree, fr.old_path or fr.path)
        hunks = hunks_between(old, new, GITHUB_CONTEXT_LINES)
        ranges = tuple(
            (h.new_start, h.new_start + h.new_lines - 1) for h in hunks if h.new_lines > 0
        )
        # Lines as git numbers them: split at LF only (str.splitlines also splits at form
        # feeds, U+2028 and others, which would shift every later line number).
        text = new.decode("utf-8", "replace")
        parts = text.split("\n")
        if text.endswith("\n"):
            parts.pop()
        lines = tuple(p.removesuffix("\r") for p in parts)
        out[fr.path] = FileLines(ranges, lines)
    return out
