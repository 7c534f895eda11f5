"""The diff of a change range with pygit2 (no `git` subprocess): base...head like a pull request.

`base...head` compares the merge base of the two commits with head, so commits that landed on
the base branch after the PR branched off are not part of the PR's change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from bot.errors import UsageError
from bot.git.types import ChangeKind, DiffLine, FileChange, Hunk
from bot.inert import unicode_safe

_STATUS: dict[str, ChangeKind] = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "typechange",
}

_COMMIT_MODE = int(pygit2.enums.FileMode.COMMIT)  # a submodule pointer
_BLOB_TYPE = int(pygit2.enums.ObjectType.BLOB)

# Rename detection as `git diff -M` does it (50% similarity).
RENAME_THRESHOLD = 50


@dataclass(frozen=True)
class ChangeRange:
    base_sha: str  # the base as the user named it, resolved
    head_sha: str
    merge_base_sha: str  # what the diff really starts from

    @property
    def policy_sha(self) -> str:
        """Where the repository's own policy is read (config, `.gitattributes`, rules files):
        the base itself, not the merge base. The merge base is trusted too, but the PR author
        picks it (by where the branch starts): an old fork point would bring back whatever
        looser policy the base branch had then (docs/security.md, §6.13)."""
        return self.base_sha


def open_repo(path: Path) -> pygit2.Repository:
    try:
        found = pygit2.discover_repository(str(path))
    except pygit2.GitError as exc:
        raise UsageError(f"{path}: cannot open git repository: {exc}") from None
    if found is None:
        raise UsageError(f"{path}: not a git repository")
    return pygit2.Repository(found)


def resolve_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit:
    """Resolve a branch/tag name, sha or revision expression (HEAD~1, origin/main) to a commit;
    a branch that exists only as `origin/<ref>` (a CI checkout) resolves too."""
    try:
        return repo.revparse_single(ref).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
        first = exc
    try:
        return repo.revparse_single(f"origin/{ref}").peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        raise UsageError(
            f"cannot resolve git revision {ref!r}: {first}",
            hint="fetch enough history (actions/checkout with fetch-depth: 0) or pass a sha",
        ) from None


def change_range(repo: pygit2.Repository, base: str, head: str) -> ChangeRange:
    base_c = resolve_commit(repo, base)
    head_c = resolve_commit(repo, head)
    mb = repo.merge_base(base_c.id, head_c.id)
    if mb is None:
        raise UsageError(
            f"{base!r} and {head!r} have no common ancestor",
            hint="a shallow clone hides it: fetch with fetch-depth: 0",
        )
    return ChangeRange(str(base_c.id), str(head_c.id), str(mb))


def _hunks(patch: pygit2.Patch) -> tuple[Hunk, ...]:
    out: list[Hunk] = []
    for h in patch.hunks:
        lines: list[DiffLine] = []
        for ln in h.lines:
            # libgit2 also emits '<' '>' '=' for "no newline at end of file" markers: not content.
            if ln.origin == "+":
                lines.append(DiffLine("+", None, ln.new_lineno, ln.content))
            elif ln.origin == "-":
                lines.append(DiffLine("-", ln.old_lineno, None, ln.content))
            elif ln.origin == " ":
                lines.append(DiffLine(" ", ln.old_lineno, ln.new_lineno, ln.content))
        out.append(Hunk(h.old_start, h.old_lines, h.new_start, h.new_lines, h.header, tuple(lines)))
    return tuple(out)


def hunks_between(old: bytes | None, new: bytes | None, context_lines: int = 3) -> tuple[Hunk, ...]:
    """The hunks of old → new as `diff_files` makes them (for callers without a repository)."""
    patch = pygit2.Patch.create_from(old, new, context_lines=context_lines, interhunk_lines=0)
    return _hunks(patch)


def _oid(f: pygit2.DiffFile, mode: int | None = None) -> str | None:
    s = str(f.id)
    mode = int(f.mode) if mode is None else mode
    return None if mode == 0 or set(s) == {"0"} else s


@dataclass(frozen=True)
class ChangedFile:
    """A FileChange with the bytes of both sides as read for the diff (None: absent or not a
    blob of this repository, e.g. a submodule), so no stage has to read a blob again."""

    change: FileChange
    old_data: bytes | None
    new_data: bytes | None
    # A side is larger than `max_blob_bytes`: neither side was read, no patch was made.
    too_large: bool = False
    # A blob side this repository cannot read (a missing object in a shallow or partial
    # clone, a corrupt pack): no patch was made, the file is not reviewable as it is.
    unreadable: bool = False


def _read(odb: pygit2.Odb, oid: pygit2.Oid, mode: int) -> bytes | None:
    """A blob's bytes straight from the object database (no Blob object: half the cost on
    a 1,000-file change); None for a submodule or an object this repository does not have."""
    if mode == _COMMIT_MODE:
        return None
    try:
        kind, data = odb.read(oid)[:2]
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return bytes(data) if kind == _BLOB_TYPE else None


def _size(odb: pygit2.Odb, oid: pygit2.Oid, mode: int) -> int | None:
    """A blob's size from its object header, without inflating the content; None for a
    submodule or an object this repository does not have."""
    if mode == _COMMIT_MODE:
        return None
    try:
        kind, size = odb.read_header(oid)
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return int(size) if int(kind) == _BLOB_TYPE else None


def _kept(data: bytes | None, keep_bytes: int | None) -> bytes | None:
    return None if keep_bytes is not None and data is not None and len(data) > keep_bytes else data


def diff_files(
    repo: pygit2.Repository,
    old_sha: str,
    new_sha: str,
    context_lines: int = 3,
    keep_bytes: int | None = None,
    part: tuple[int, int] = (0, 1),
    max_blob_bytes: int | None = None,
) -> list[ChangedFile]:
    """Every changed file between two commits, renames detected, hunks with `context_lines`,
    and the content of both sides (None for a side larger than `keep_bytes`, so one huge
    file does not stay in memory for the whole review). A file with a side larger than
    `max_blob_bytes` (known from the object header) is neither read nor diffed: no hunks,
    `too_large` set, sizes from the headers (the diff and the line checks of a 50 MB text
    file would cost tens of seconds and several times its size in memory). `part=(k, n)`:
    only every n-th changed file, starting at the k-th, so n processes share a large change.

    The tree diff only finds the deltas (and renames); each patch is then made from the two
    blobs read here once, instead of libgit2 loading them for the patch and the caller
    loading them again for triage and the local checks. `binary` is libgit2's judgement of
    the content (a NUL byte or mostly unprintable bytes in the first 8,000); .gitattributes is
    not consulted here.
    """
    old_tree = repo[old_sha].peel(pygit2.Commit).tree
    new_tree = repo[new_sha].peel(pygit2.Commit).tree
    diff = old_tree.diff_to_tree(
        new_tree,
        flags=pygit2.enums.DiffOption.INCLUDE_TYPECHANGE,
        context_lines=context_lines,
        interhunk_lines=0,
    )
    diff.find_similar(flags=pygit2.enums.DiffFind.FIND_RENAMES, rename_threshold=RENAME_THRESHOLD)
    deltas = list(diff.deltas)
    odb = repo.odb
    out: list[ChangedFile] = []
    k, n = part
    for index, d in enumerate(deltas):
        if index % n != k:
            continue
        kind = _STATUS.get(d.status_char())
        if kind is None:  # unmodified/ignored/untracked/unreadable: cannot happen tree-to-tree
            continue
        # Each `.mode` access builds an enum member (slow on a 1,000-file change): once each.
        old_file, new_file = d.old_file, d.new_file
        old_mode, new_mode = int(old_file.mode), int(new_file.mode)
        old_oid, new_oid = _oid(old_file, old_mode), _oid(new_file, new_mode)
        paths, modes, oids = (
            (old_file.path, new_file.path),
            (old_mode, new_mode),
            (old_oid, new_oid),
        )
        if max_blob_bytes is not None:
            sizes = (
                _size(odb, old_file.id, old_mode) if old_oid else None,
                _size(odb, new_file.id, new_mode) if new_oid else None,
            )
            if any(size is not None and size > max_blob_bytes for size in sizes):
                # binary: unknown, telling would mean reading the content.
                known = (sizes[0] or 0, sizes[1] or 0)
                change = _file_change(paths, kind, modes, oids, known, binary=False)
                out.append(ChangedFile(change, None, None, too_large=True))
                continue
        old_data = _read(odb, old_file.id, old_mode) if old_oid else None
        new_data = _read(odb, new_file.id, new_mode) if new_oid else None
        missing = any(
            oid is not None and mode != _COMMIT_MODE and data is None
            for oid, mode, data in ((old_oid, old_mode, old_data), (new_oid, new_mode, new_data))
        )
        if missing:
            change = _file_change(paths, kind, modes, oids, (0, 0), binary=False)
            out.append(ChangedFile(change, None, None, unreadable=True))
            continue
        patch: pygit2.Patch | None
        if (old_oid is None or old_data is not None) and (new_oid is None or new_data is not None):
            patch = pygit2.Patch.create_from(
                old_data,
                new_data,
                # Only the patch header shows these; a non-UTF-8 name (pygit2 reads it with
                # surrogateescape) cannot be encoded back, so it is spelled out instead.
                old_as_path=unicode_safe(old_file.path),
                new_as_path=unicode_safe(new_file.path),
                context_lines=context_lines,
                interhunk_lines=0,
            )
        else:  # a submodule side: libgit2 renders the "Subproject commit" lines itself
            patch = diff[index]
        # From the content alone: `-diff` in .gitattributes is policy, which the caller reads
        # from the base (bot.git.attributes), never from the commits being compared.
        binary = patch is None or bool(patch.delta.is_binary)
        sizes = (
            len(old_data) if old_data is not None else 0,
            len(new_data) if new_data is not None else 0,
        )
        hunks = () if binary or patch is None else _hunks(patch)
        change = _file_change(paths, kind, modes, oids, sizes, binary, hunks)
        out.append(ChangedFile(change, _kept(old_data, keep_bytes), _kept(new_data, keep_bytes)))
    out.sort(key=lambda c: c.change.path)
    return out


def _file_change(
    paths: tuple[str, str],
    kind: ChangeKind,
    modes: tuple[int, int],
    oids: tuple[str | None, str | None],
    sizes: tuple[int, int],
    binary: bool,
    hunks: tuple[Hunk, ...] = (),
) -> FileChange:
    old_path, new_path = paths
    return FileChange(
        path=old_path if kind == "deleted" else new_path,
        old_path=old_path if kind in ("renamed", "copied") else None,
        change=kind,
        old_oid=oids[0],
        new_oid=oids[1],
        old_mode=modes[0],
        new_mode=modes[1],
        binary=binary,
        old_size=sizes[0],
        new_size=sizes[1],
        hunks=hunks,
    )


def count_changes(repo: pygit2.Repository, old_sha: str, new_sha: str) -> int:
    """How many paths differ between two commits (no rename detection, no content read)."""
    old_tree = repo[old_sha].peel(pygit2.Commit).tree
    new_tree = repo[new_sha].peel(pygit2.Commit).tree
    return len(old_tree.diff_to_tree(new_tree))


def diff_changes(
    repo: pygit2.Repository, old_sha: str, new_sha: str, context_lines: int = 3
) -> list[FileChange]:
    """Every changed file between two commits, renames detected, hunks with `context_lines`."""
    return [f.change for f in diff_files(repo, old_sha, new_sha, context_lines)]
