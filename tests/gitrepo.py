"""A tiny pygit2 repository builder for tests: real repositories on disk, no `git` subprocess.

    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({"a.py": "x = 1\n", "img.png": b"\\x89PNG\\x00"}, message="base")
    head = rb.commit({"a.py": "x = 2\n", "img.png": None}, branch="feature", parents=[base])

Each commit starts from the tree of its first parent; a value of None deletes the path.
`parents` defaults to the tip of `branch` (a root commit when the branch does not exist yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pygit2

Content = str | bytes | None

_SIG = pygit2.Signature("Test Author", "author@example.invalid", 1_700_000_000, 0)


class RepoBuilder:
    def __init__(self, path: Path, *, default_branch: str = "main") -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.default_branch = default_branch
        self.repo = pygit2.init_repository(str(path), initial_head=default_branch)
        self._tick = 0

    def tip(self, branch: str | None = None) -> str | None:
        ref = self.repo.references.get(f"refs/heads/{branch or self.default_branch}")
        return str(ref.target) if ref is not None else None

    def commit(
        self,
        files: Mapping[str, Content],
        *,
        message: str = "change",
        branch: str | None = None,
        parents: Sequence[str] | None = None,
        modes: Mapping[str, int] | None = None,
    ) -> str:
        """Write a commit on `branch` (default branch if None) and return its sha."""
        branch = branch or self.default_branch
        if parents is None:
            tip = self.tip(branch)
            parents = [tip] if tip else []
        index = pygit2.Index()
        if parents:
            index.read_tree(self.repo[parents[0]].peel(pygit2.Commit).tree)
        for path, content in files.items():
            if content is None:
                index.remove(path)
                continue
            data = content.encode("utf-8") if isinstance(content, str) else content
            blob = self.repo.create_blob(data)
            mode = (modes or {}).get(path, pygit2.enums.FileMode.BLOB)
            index.add(pygit2.IndexEntry(path, blob, mode))
        tree = index.write_tree(self.repo)
        # Distinct timestamps keep commit order deterministic across fast successive commits.
        self._tick += 1
        sig = pygit2.Signature(_SIG.name, _SIG.email, _SIG.time + self._tick, 0)
        oid = self.repo.create_commit(
            None,
            sig,
            sig,
            message,
            tree,
            [pygit2.Oid(hex=p) for p in parents],
        )
        # Forced, so a "rebased" commit can replace a branch tip that is not its parent.
        self.repo.references.create(f"refs/heads/{branch}", oid, force=True)
        return str(oid)

    def checkout(self, branch: str | None = None) -> None:
        """Write the branch's tree into the working directory (e.g. to read its config file)."""
        ref = f"refs/heads/{branch or self.default_branch}"
        self.repo.checkout(ref, strategy=pygit2.enums.CheckoutStrategy.FORCE)
