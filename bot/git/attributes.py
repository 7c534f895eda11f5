"""`.gitattributes` as committed at a given commit — in practice the base, never the head.

`.gitattributes` is repository-controlled policy (linguist-generated, linguist-vendored, -diff):
a PR that adds `* -diff` or `linguist-generated` must not get its own files skipped. So the
lookups read the attribute files of one commit's tree and nothing else. libgit2's
`git_attr_get_ext` always consults the index (and the working directory) too, and in GitHub
Actions both hold the PR's head; so the lookups run against `policy_view(repo)`, an in-memory
repository that shares the object database and has no index, working directory, config or
`info/attributes` of its own (docs/security.md, §6.10).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pygit2

# Attributes come from the given commit's tree only (INCLUDE_COMMIT; the view has no index).
_FLAGS = (
    pygit2.enums.AttrCheck.INDEX_ONLY
    | pygit2.enums.AttrCheck.INCLUDE_COMMIT
    | pygit2.enums.AttrCheck.NO_SYSTEM
)


def policy_view(repo: pygit2.Repository) -> pygit2.Repository:
    """A repository over the same objects with no index, working tree or local files."""
    view = pygit2.Repository()
    odb = pygit2.Odb()
    odb.add_disk_alternate(os.path.join(repo.path, "objects"))
    view.set_odb(odb)
    return view


def _truthy(value: bool | str | None) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


def attribute_set(view: pygit2.Repository, commit_sha: str, path: str, name: str) -> bool:
    """True when `name` is set (or set to a true value) for `path` at `commit_sha`."""
    try:
        value = view.get_attr(path, name, flags=_FLAGS, commit=commit_sha)
    except (pygit2.GitError, ValueError, KeyError):
        return False
    return _truthy(value)


def diff_disabled(view: pygit2.Repository, commit_sha: str, path: str) -> bool:
    """`-diff` (or the `binary` macro) is set for `path`: git shows it as a binary file."""
    try:
        value = view.get_attr(path, "diff", flags=_FLAGS, commit=commit_sha)
    except (pygit2.GitError, ValueError, KeyError):
        return False
    return value is False


def may_have_attributes(repo: pygit2.Repository, commit_sha: str, paths: Iterable[str]) -> bool:
    """False when no `.gitattributes` exists at the commit in any directory above `paths`,
    so per-file lookups can be skipped on big changes."""
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
