"""The manifest of a release: the git tree of a commit, read with pygit2 (no checkout, no hashing).

One entry per file: path, git mode (0o100644, 0o100755, 0o120000), blob id, size and, for
symlinks, the link target. Paths that would land outside the release (absolute, `..`, odd
components) and symlinks pointing outside the tree are refused with a DeployFailed naming the path.
Submodules (gitlinks) carry no content in the tree; they are listed in `Manifest.submodules`.

`Manifest.digest` is sha256 over the sorted `Manifest.lines()`; it is stored in the release's
completion marker so the audit can tell which tree a release claims to hold.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pygit2

from bot.errors import DeployFailed, UsageError

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
        return f"{self.mode:06o} {self.oid} {self.size}\t{self.path}"


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
        h = hashlib.sha256()
        for line in self.lines():
            h.update(line.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()

    def without(self, excludes: tuple[str, ...]) -> Manifest:
        """The manifest minus entries at or under `excludes` (shared entries replace them)."""
        kept = tuple(
            e
            for e in self.entries
            if not any(e.path == x or e.path.startswith(x + "/") for x in excludes)
        )
        return Manifest(self.sha, self.ref, kept, self.repo_path, self.submodules)


def _check_component(name: str, parent: str) -> str:
    where = posixpath.join(parent, name) if parent else name
    if name in ("", ".", "..") or "/" in name or "\0" in name or "\\" in name:
        raise DeployFailed(
            f"refusing to deploy: tree entry {where!r} would land outside the release",
            hint="the commit holds a path with an empty, '.', '..' or separator component",
        )
    return where


def check_link_target(path: str, target: str) -> None:
    """Refuse a symlink at `path` whose target is absolute or climbs out of the release."""
    if not target or target.startswith("/") or "\0" in target:
        raise DeployFailed(
            f"refusing to deploy: symlink {path!r} points outside the release ({target!r})",
            hint="use a relative link that stays inside the repository tree",
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise DeployFailed(
            f"refusing to deploy: symlink {path!r} points outside the release ({target!r})",
            hint="use a relative link that stays inside the repository tree",
        )


def _walk(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    prefix: str,
    out: list[ManifestEntry],
    subs: list[str],
) -> None:
    odb = repo.odb
    for item in tree:
        path = _check_component(str(item.name), prefix)
        mode = int(item.filemode)
        if mode == _MODE_TREE:
            _walk(repo, repo[item.id].peel(pygit2.Tree), path, out, subs)
        elif mode == _MODE_GITLINK:
            subs.append(path)
        elif mode in _FILE_MODES or mode == 0o100664:
            # The header alone gives the size: no blob is inflated just to list the tree.
            size = int(odb.read_header(item.id)[1])
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
            out.append(
                ManifestEntry(
                    path, mode if mode != 0o100664 else MODE_FILE, str(item.id), size, link
                )
            )
        else:
            raise DeployFailed(f"refusing to deploy: tree entry {path!r} has unknown mode {mode:o}")


def open_repo(repo_path: Path | str) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(repo_path))
    except pygit2.GitError:
        raise UsageError(f"{repo_path}: not a git repository") from None


def resolve_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit:
    """`ref` as a commit; a branch that exists only as `origin/<ref>` (a CI checkout) works too."""
    for spec in (ref, f"origin/{ref}"):
        try:
            return repo.revparse_single(spec).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            continue
    raise UsageError(f"ref {ref!r} does not name a commit in {repo.path}")


def build_manifest(repo_path: Path | str, ref: str) -> Manifest:
    """The manifest of `ref` (any rev-spec naming a commit) in the repository at `repo_path`.

    Raises UsageError for a missing repository or an unknown ref, DeployFailed for a tree that
    holds a path or symlink that would escape the release.
    """
    repo = open_repo(repo_path)
    commit = resolve_commit(repo, ref)
    entries: list[ManifestEntry] = []
    subs: list[str] = []
    _walk(repo, commit.tree, "", entries, subs)
    entries.sort(key=lambda e: e.path)
    return Manifest(str(commit.id), ref, tuple(entries), str(repo_path), tuple(subs))


def read_blob(repo: pygit2.Repository, oid: str) -> bytes:
    """The content of one blob of a manifest (the bytes a release file must hold)."""
    try:
        kind, data = repo.odb.read(pygit2.Oid(hex=oid))[:2]
    except (KeyError, ValueError, pygit2.GitError):
        raise DeployFailed(f"blob {oid} is missing from the local repository") from None
    if kind != pygit2.enums.ObjectType.BLOB:
        raise DeployFailed(f"object {oid} is not a blob")
    return bytes(data)


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (sha1 over `blob <size>\\0` + data), as the remote computes it."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()
