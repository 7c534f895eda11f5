"""`.gitattributes` lookups at a given commit (pygit2 `Repository.get_attr`)."""

from __future__ import annotations

from pathlib import Path

import pygit2

# Attributes come from the head commit's tree (not the working directory or system files), so
# the result depends only on what is being reviewed.
_FLAGS = (
    pygit2.enums.AttrCheck.INDEX_ONLY
    | pygit2.enums.AttrCheck.INCLUDE_COMMIT
    | pygit2.enums.AttrCheck.NO_SYSTEM
)


def _truthy(value: bool | str | None) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


def attribute_set(repo: pygit2.Repository, commit_sha: str, path: str, name: str) -> bool:
    """True when `name` is set (or set to a true value) for `path` at `commit_sha`."""
    try:
        value = repo.get_attr(path, name, flags=_FLAGS, commit=commit_sha)
    except (pygit2.GitError, ValueError, KeyError):
        return False
    return _truthy(value)


def may_have_attributes(repo: pygit2.Repository, commit_sha: str, paths: list[str]) -> bool:
    """False when no `.gitattributes` exists at the commit in any directory above `paths`
    (nor in .git/info/attributes), so per-file lookups can be skipped on big changes."""
    if (Path(repo.path) / "info" / "attributes").exists():
        return True
    tree = repo[commit_sha].peel(pygit2.Commit).tree
    dirs = {""}
    for p in paths:
        parts = p.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in dirs:
        candidate = f"{d}/.gitattributes" if d else ".gitattributes"
        if candidate in tree:
            return True
    return False


def diff_disabled(repo: pygit2.Repository, commit_sha: str, path: str) -> bool:
    """`-diff` (or the `binary` macro) is set for `path`: git shows it as a binary file."""
    try:
        value = repo.get_attr(path, "diff", flags=_FLAGS, commit=commit_sha)
    except (pygit2.GitError, ValueError, KeyError):
        return False
    return value is False
