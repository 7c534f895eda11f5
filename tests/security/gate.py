"""Running the review gate as a user does, and proving it touched nothing it should not.

`Gate` runs `gatebot review` (the real CLI, a subprocess) on a real pygit2 repository, against
the loopback Gemini when one is given, with the review cache in its own directory. `snapshot`
records every entry of a directory tree without following links (type, mode, size, content
hash or link target), so a test can assert that nothing outside the cache and output
directories was created, changed or deleted by the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.gemini import FakeGemini
from tests.security.harness import clean_env, run_gatebot

Entry = tuple[str, int, int, str]


def snapshot(root: Path, *, exclude: tuple[Path, ...] = ()) -> dict[str, Entry]:
    """path -> (kind, mode, size, content sha256 / link target) for everything under `root`,
    links not followed, `exclude`d subtrees left out."""
    skip = {os.path.realpath(p) for p in exclude}
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", st.st_mode, 0, os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                out[rel] = ("file", st.st_mode, st.st_size, digest)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode, 0, "")
            else:
                out[rel] = ("other", st.st_mode, st.st_size, "")
    return out


def changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """Human-readable differences between two snapshots (empty: nothing changed)."""
    out = [f"deleted {p}" for p in sorted(before.keys() - after.keys())]
    out += [f"created {p}" for p in sorted(after.keys() - before.keys())]
    out += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return out


@dataclass
class GateRun:
    proc: subprocess.CompletedProcess[str]
    verdict: dict[str, Any]
    outside: list[str] = field(default_factory=list)  # changes outside cache and output

    @property
    def code(self) -> int:
        return self.proc.returncode

    def file(self, path: str) -> dict[str, Any]:
        matches = [f for f in self.verdict["files"] if f["path"] == path]
        assert matches, f"{path} not in the verdict: {[f['path'] for f in self.verdict['files']]}"
        return matches[0]

    def findings(self, path: str, category: str | None = None) -> list[dict[str, Any]]:
        return [
            f for f in self.file(path)["findings"] if category is None or f["category"] == category
        ]


class Gate:
    """`gatebot review` over `root`/repo with the cache in `root`/cache, outputs in `root`/out.
    Each run snapshots `root` (minus cache and output) before and after."""

    def __init__(self, root: Path, gemini: FakeGemini | None = None) -> None:
        self.root = root
        self.repo = root / "repo"
        self.cache = root / "cache"
        self.out = root / "out"
        self.gemini = gemini

    def env(self, **extra: str) -> dict[str, str]:
        if self.gemini is None:
            return clean_env(**extra)
        return clean_env(
            GEMINI_API_KEY=self.gemini.api_key, GOOGLE_GEMINI_BASE_URL=self.gemini.url, **extra
        )

    def review(self, base: str, head: str, *extra: str, timeout: float = 120) -> GateRun:
        excluded = (self.cache, self.out)
        before = snapshot(self.root, exclude=excluded)
        args = [
            "review",
            "--repo",
            str(self.repo),
            "--base",
            base,
            "--head",
            head,
            "--out",
            str(self.out),
            "--cache-dir",
            str(self.cache),
            *extra,
        ]
        proc = run_gatebot(args, self.env(), cwd=self.root, timeout=timeout)
        after = snapshot(self.root, exclude=excluded)
        verdict_file = self.out / "verdict.json"
        assert verdict_file.exists(), f"no verdict (exit {proc.returncode}):\n{proc.stderr}"
        verdict = json.loads(verdict_file.read_text(encoding="utf-8"))
        return GateRun(proc, verdict, changes(before, after))
