"""A filesystem in memory for the in-memory host (bot/deploy/host/memory.py): absolute POSIX
paths to nodes, hard links as shared file objects, symlinks never followed unless asked."""

from __future__ import annotations

import itertools
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.deploy.hostside.protocol import (
    RECORD,
    STANDBY_PREFIX,
    Extracted,
    Listing,
    blob_id,
    excluded,
)
from bot.deploy.hostside.upload import parts_of

_inodes = itertools.count(1)
_clock = itertools.count(1_000_000)


@dataclass(eq=False)
class File:
    """A regular file; two paths holding the same File are hard links (one inode)."""

    data: bytes
    mode: int = 0o644
    inode: int = field(default_factory=lambda: next(_inodes))


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(eq=False)
class Dir:
    mtime: float = 0.0
    stamp: int = field(default_factory=lambda: next(_clock))


Node = File | Symlink | Dir


class MemFS:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"/": Dir()}

    # ---- reading ---------------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        return self.nodes.get(posixpath.normpath(path))

    def isdir(self, path: str) -> bool:
        """Like os.path.isdir: follows a symlink at `path`."""
        return isinstance(self.get(self.resolve(path)), Dir)

    def islink(self, path: str) -> bool:
        return isinstance(self.get(path), Symlink)

    def exists(self, path: str) -> bool:
        return self.get(self.resolve(path)) is not None

    def listdir(self, path: str) -> list[str]:
        base = posixpath.normpath(path).rstrip("/") + "/"
        return sorted(
            p[len(base) :] for p in self.nodes if p.startswith(base) and "/" not in p[len(base) :]
        )

    def below(self, path: str) -> Iterator[str]:
        """Every path under `path` (not itself), parents before children."""
        base = posixpath.normpath(path).rstrip("/") + "/"
        return iter(sorted(p for p in self.nodes if p.startswith(base)))

    def read_text(self, path: str) -> str | None:
        node = self.get(self.resolve(path))
        return node.data.decode("utf-8", "replace") if isinstance(node, File) else None

    def resolve(self, path: str) -> str:
        """`path` with every symlink in it followed (relative targets), as the OS would."""
        parts = [c for c in posixpath.normpath(path).split("/") if c]
        out = "/"
        for hops, comp in enumerate(parts):
            nxt = posixpath.join(out, comp)
            node = self.nodes.get(nxt)
            if isinstance(node, Symlink) and hops < 40:
                nxt = posixpath.normpath(posixpath.join(out, node.target))
                nxt = self.resolve(nxt)
            out = nxt
        return out

    # ---- writing ---------------------------------------------------------------------------

    def mkdirs(self, path: str) -> None:
        cur = "/"
        for comp in [c for c in posixpath.normpath(path).split("/") if c]:
            cur = posixpath.join(cur, comp)
            node = self.nodes.get(cur)
            if node is None:
                self.nodes[cur] = Dir()
            elif not isinstance(node, Dir):
                raise FileExistsError(f"{cur} exists and is not a directory")

    def put(self, path: str, node: Node) -> None:
        path = posixpath.normpath(path)
        parent = self.get(posixpath.dirname(path))
        if not isinstance(parent, Dir):
            raise FileNotFoundError(f"no directory {posixpath.dirname(path)}")
        self.nodes[path] = node

    def remove(self, path: str) -> bool:
        path = posixpath.normpath(path)
        if path not in self.nodes:
            return False
        for p in list(self.below(path)):
            del self.nodes[p]
        del self.nodes[path]
        return True

    def rename(self, src: str, dst: str) -> None:
        src, dst = posixpath.normpath(src), posixpath.normpath(dst)
        if src not in self.nodes:
            raise FileNotFoundError(src)
        moved = {src: dst} | {p: dst + p[len(src) :] for p in self.below(src)}
        self.remove(dst)
        for old, new in moved.items():
            self.nodes[new] = self.nodes.pop(old)

    def copy_links(self, src: str, dst: str, drop: tuple[str, ...]) -> int:
        """`dst` as a hard-linked copy of `src` without `drop` entries; files linked."""
        self.put(dst, Dir())
        linked = 0
        base = posixpath.normpath(src)
        for p in list(self.below(base)):
            rel = p[len(base) + 1 :]
            if excluded(rel, drop):
                continue
            node = self.nodes[p]
            self.nodes[posixpath.join(dst, rel)] = Dir() if isinstance(node, Dir) else node
            linked += isinstance(node, File)
        return linked

    def listing(self, root: str, excl: list[str]) -> Listing:
        """What the host program's hash_tree answers for `root`."""
        out: Listing = {}
        base = posixpath.normpath(root)
        for p in self.below(base):
            rel = p[len(base) + 1 :]
            if excluded(rel, excl):
                continue
            node = self.nodes[p]
            if isinstance(node, File):
                mode = 0o100755 if node.mode & 0o100 else 0o100644
                out[rel] = (mode, blob_id(node.data), len(node.data))
            elif isinstance(node, Symlink):
                data = node.target.encode("utf-8", "surrogateescape")
                out[rel] = (0o120000, blob_id(data), len(data))
        return out


def json_object(text: str | None) -> dict[str, object] | None:
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def standby(live: str) -> str:
    return posixpath.join(posixpath.dirname(live), STANDBY_PREFIX + posixpath.basename(live))


def unpack(fs: MemFS, root: str, data: bytes) -> Extracted:
    """The upload stream's records (protocol.RECORD) applied to `root`."""
    fs.mkdirs(root)
    at = written = deleted = 0
    while True:
        kind, mode, size, plen = RECORD.unpack_from(data, at)
        at += RECORD.size
        name = data[at : at + plen].decode("utf-8", "surrogateescape")
        payload = data[at + plen : at + plen + size]
        at += plen + size
        if kind == b"E":
            return Extracted(written, deleted)
        if kind == b"D":
            for rel in json.loads(payload.decode("utf-8", "surrogateescape")):
                path = posixpath.join(root, *parts_of(rel))
                deleted += fs.remove(path)
                parent = posixpath.dirname(path)
                while parent != posixpath.normpath(root) and not fs.listdir(parent):
                    fs.remove(parent)  # git keeps no empty directories
                    parent = posixpath.dirname(parent)
            continue
        parts = parts_of(name)
        parent = root
        for comp in parts[:-1]:
            parent = posixpath.join(parent, comp)
            if not isinstance(fs.get(parent), Dir):
                fs.remove(parent)
                fs.put(parent, Dir())
        final = posixpath.join(parent, parts[-1])
        fs.remove(final)
        if kind == b"L":
            fs.put(final, Symlink(payload.decode("utf-8", "surrogateescape")))
        else:
            fs.put(final, File(payload, mode & 0o777))
        written += 1
