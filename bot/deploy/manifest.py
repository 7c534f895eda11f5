"""The manifest of a release: the git tree of a commit, read with pygit2 (no checkout, no hashing).

One entry per file: path, git mode (0o100644, 0o100755, 0o120000), blob id, size and, for
symlinks, the link target. Paths that would land outside the release (absolute, `..`, odd
components) and symlinks pointing outside the tree are refused with a DeployFailed naming the path.
Submodules (gitlinks) carry no content in the tree; they are listed in `Manifest.submodules`.

`Manifest.digest` is sha256 over the sorted `Manifest.lines()`; it is stored in the release's
completion marker so the audit can tell which tree a release claims to hold.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.deploy.hostside.protocol import entry_line, lines_digest
from bot.errors import DeployFailed, UsageError

if TYPE_CHECKING:
    import pygit2

# pygit2 is imported by the functions that read git: a rollback, which reads none, never loads it.

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
_MODE_TREE = 0o040000
_MODE_GITLINK = 0o160000
_FILE_MODES = (MODE_FILE, MODE_EXEC, MODE_LINK)


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    mode: int
    oid: str
    size: int
    link_target: str | None = None

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK

    @property
    def executable(self) -> bool:
        return self.mode == MODE_EXEC

    def line(self) -> str:
        """`<mode octal> <blob id> <size>\\t<path>`: the unit the digest is computed over."""
        return entry_line(self.mode, self.oid, self.size, self.path)


@dataclass(frozen=True)
class Manifest:
    sha: str
    ref: str
    entries: tuple[ManifestEntry, ...]
    repo_path: str = ""
    submodules: tuple[str, ...] = ()
    _index: dict[str, ManifestEntry] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update((e.path, e) for e in self.entries)

    def get(self, path: str) -> ManifestEntry | None:
        return self._index.get(path)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def lines(self) -> list[str]:
        return sorted(e.line() for e in self.entries)

    @cached_property
    def digest(self) -> str:
        """The digest the host program computes of a listing (hostside/tree.listing_digest)."""
        return lines_digest(e.line() for e in self.entries)

    def without(self, excludes: tuple[str, ...]) -> Manifest:
        """The manifest minus entries at or under `excludes` (shared entries replace them)."""
        exact, under = frozenset(excludes), tuple(x + "/" for x in excludes)
        kept = tuple(
            e for e in self.entries if e.path not in exact and not e.path.startswith(under)
        )
        if len(kept) == len(self.entries):
            return self  # nothing left out: keep the cached digest
        return Manifest(self.sha, self.ref, kept, self.repo_path, self.submodules)


def _check_component(name: str, parent: str) -> str:
    where = posixpath.join(parent, name) if parent else name
    if name in ("", ".", "..") or "/" in name or "\0" in name or "\\" in name:
        raise DeployFailed(
            f"refusing to deploy: tree entry {where!r} would land outside the release",
            hint="the commit holds a path with an empty, '.', '..' or separator component",
        )
    return where


#: How many in-tree links one target may pass through before it counts as a loop (Linux: 40).
MAX_LINK_HOPS = 40


def _outside(path: str, target: str) -> DeployFailed:
    return DeployFailed(
        f"refusing to deploy: symlink {path!r} points outside the release ({target!r})",
        hint="use a relative link that stays inside the repository tree",
    )


def _resolve_in_tree(
    start: list[str], target: str, links: Mapping[str, str], hops: list[int]
) -> list[str] | None:
    """Where `target`, followed from directory `start`, lands as the OS resolves it: each
    component that is an in-tree symlink is replaced by what it resolves to before the next
    `..` applies. None when it leaves the release root; `hops` is the remaining link budget."""
    if target.startswith("/"):
        return None
    cur = list(start)
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not cur:
                return None
            cur.pop()
            continue
        cur.append(comp)
        link = links.get("/".join(cur))
        if link is None:
            continue
        hops[0] -= 1
        if hops[0] < 0:
            raise DeployFailed(
                f"refusing to deploy: symlink {'/'.join(cur)!r} is part of a symlink loop "
                f"(more than {MAX_LINK_HOPS} links followed)",
                hint="remove the links that point at each other",
            )
        found = _resolve_in_tree(cur[:-1], link, links, hops)
        if found is None:
            return None
        cur = found
    return cur


def check_link_target(path: str, target: str, links: Mapping[str, str] | None = None) -> None:
    """Refuse a symlink at `path` whose target is absolute or climbs out of the release.

    With `links` ({path: target} of every symlink in the tree) the target is also followed
    through other in-tree links, as the OS would: `a/b/L -> ../..` makes `esc ->
    a/b/L/../../../etc` leave the release although it reads as `etc`."""
    if not target or target.startswith("/") or "\0" in target:
        raise _outside(path, target)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _outside(path, target)
    if links:
        parent = [c for c in posixpath.dirname(path).split("/") if c]
        if _resolve_in_tree(parent, target, links, [MAX_LINK_HOPS]) is None:
            raise _outside(path, target)


def _walk(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    prefix: str,
    out: list[ManifestEntry],
    subs: list[str],
    sizes: dict[str, int],
) -> None:
    import pygit2

    odb = repo.odb
    for item in tree:
        path = _check_component(str(item.name), prefix)
        mode = int(item.filemode)
        if mode == _MODE_TREE:
            _walk(repo, repo[item.id].peel(pygit2.Tree), path, out, subs, sizes)
        elif mode == _MODE_GITLINK:
            subs.append(path)
        elif mode in _FILE_MODES or mode == 0o100664:
            oid = str(item.id)
            size = sizes.get(oid)
            if size is None:
                # The header alone gives the size: no blob is inflated just to list the tree.
                size = sizes[oid] = int(odb.read_header(item.id)[1])
            link = None
            if mode == MODE_LINK:
                try:
                    link = read_blob(repo, str(item.id)).decode("utf-8")
                except UnicodeDecodeError:
                    raise DeployFailed(
                        f"refusing to deploy: symlink {path!r} has a target that is not UTF-8"
                    ) from None
                check_link_target(path, link)
            # 100664 is a legacy git mode for a plain file.
            mode = mode if mode != 0o100664 else MODE_FILE
            out.append(ManifestEntry(path, mode, oid, size, link))
        else:
            raise DeployFailed(f"refusing to deploy: tree entry {path!r} has unknown mode {mode:o}")


def old_entries_from_diff(
    repo: pygit2.Repository, old_sha: str, new: Manifest, excludes: tuple[str, ...] = ()
) -> dict[str, tuple[int, str]]:
    """{path: (mode, blob id)} of the tree of `old_sha`, from `new` (its manifest, `excludes`
    already left out) and a diff of the two trees: libgit2 compares subtree ids first, so a
    one-file change costs about one path's worth of tree reads, not a walk of every entry.

    Raises UsageError when `old_sha` is not a commit of `repo`."""
    import pygit2

    try:
        old_tree = repo[old_sha].peel(pygit2.Commit).tree
        new_tree = repo[new.sha].peel(pygit2.Commit).tree
    except (KeyError, ValueError, pygit2.GitError):
        raise UsageError(f"commit {old_sha[:12]} is not in {repo.path}") from None
    touched: set[str] = set()
    before: dict[str, tuple[int, str]] = {}
    for delta in old_tree.diff_to_tree(new_tree).deltas:
        touched.add(delta.new_file.path)
        touched.add(delta.old_file.path)
        f = delta.old_file
        mode = MODE_FILE if f.mode == 0o100664 else int(f.mode)
        excluded = any(f.path == x or f.path.startswith(x + "/") for x in excludes)
        if mode in _FILE_MODES and not excluded:
            before[f.path] = (mode, str(f.id))
    out = {e.path: (e.mode, e.oid) for e in new if e.path not in touched}
    out.update(before)
    return out


def build_manifest(
    repo_path: Path | str, ref: str, sizes: Mapping[str, int] | None = None
) -> Manifest:
    """The manifest of `ref` (any rev-spec naming a commit) in the repository at `repo_path`.

    `sizes`: blob sizes known already ({blob id: size}, bot/deploy/blobsizes.py); the others
    are read from git. A wrong one makes a manifest no release ever matches (see there).

    Raises UsageError for a missing repository or an unknown ref, DeployFailed for a tree that
    cannot be parsed or holds a path or symlink that would escape the release (also through
    other in-tree links).
    """
    import pygit2

    from bot.git.diff import open_repo, resolve_commit

    repo = open_repo(Path(repo_path))
    commit = resolve_commit(repo, ref)
    entries: list[ManifestEntry] = []
    subs: list[str] = []
    try:
        _walk(repo, commit.tree, "", entries, subs, dict(sizes or {}))
    except pygit2.GitError as exc:
        # A tree object libgit2 cannot parse (an entry with an empty name, a cut object).
        raise DeployFailed(
            f"refusing to deploy {ref!r} ({str(commit.id)[:7]}): its git tree cannot be "
            f"read: {exc}",
            hint="the commit holds a corrupt or hand-made tree object; run `git fsck`",
        ) from None
    entries.sort(key=lambda e: e.path)
    # Each link was judged alone while walking; now follow targets through the other links.
    links = {e.path: e.link_target for e in entries if e.link_target is not None}
    for path, target in sorted(links.items()):
        check_link_target(path, target, links)
    return Manifest(str(commit.id), ref, tuple(entries), str(repo_path), tuple(subs))


def read_blob(repo: pygit2.Repository, oid: str) -> bytes:
    """The content of one blob of a manifest (the bytes a release file must hold)."""
    import pygit2

    try:
        kind, data = repo.odb.read(pygit2.Oid(hex=oid))[:2]
    except (KeyError, ValueError, pygit2.GitError):
        raise DeployFailed(f"blob {oid} is missing from the local repository") from None
    if kind != pygit2.enums.ObjectType.BLOB:
        raise DeployFailed(f"object {oid} is not a blob")
    return bytes(data)
