"""Child process for the size faults: build a big change with pygit2, review it with no
provider, print time and memory as JSON. A child, so ru_maxrss is this review's own peak and
not an earlier test's."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import pygit2

from bot.config import GatebotConfig
from bot.review.pipeline import run_review, write_outputs

SIG = pygit2.Signature("gatebot tests", "tests@gatebot.invalid", 1_700_000_000, 0)


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def build(repo_dir: Path, kind: str) -> None:
    repo = pygit2.init_repository(str(repo_dir), initial_head="main")
    index = pygit2.Index()
    index.add(pygit2.IndexEntry("README.md", repo.create_blob(b"x\n"), pygit2.enums.FileMode.BLOB))
    base = repo.create_commit("refs/heads/main", SIG, SIG, "base", index.write_tree(repo), [])
    if kind == "many":
        # 10,000 tiny files in 100 directories, all in one in-memory index: one tree write.
        for i in range(10_000):
            blob = repo.create_blob(f"v{i} = {i}\n".encode())
            index.add(pygit2.IndexEntry(f"pkg{i // 100:03d}/m{i:05d}.py", blob, 0o100644))
    else:
        line = b"# " + b"x" * 77 + b"\n"
        # A key at the very end: the streamed secret scan must read all 50 MB to find it.
        key = b"aws_key = '" + b"AKIA" + b"Q" * 16 + b"'\n"
        blob = repo.create_blob(line * (50 * 1024 * 1024 // len(line)) + key)
        index.add(pygit2.IndexEntry("data/big.py", blob, 0o100644))
    repo.create_commit("refs/heads/feature", SIG, SIG, kind, index.write_tree(repo), [base])


def main() -> None:
    tmp, kind = Path(sys.argv[1]), sys.argv[2]
    build(tmp / "repo", kind)
    before = _rss_mb(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run = run_review(tmp / "repo", "main", "feature", GatebotConfig(), tmp / "cache", None)
    seconds = time.perf_counter() - started
    write_outputs(run, tmp / "out")
    v = run.verdict
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_delta_mb": _rss_mb(resource.RUSAGE_SELF) - before,
                "children_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
                "verdict": v.verdict,
                "files": len(v.files),
                "statuses": sorted({f.status for f in v.files}),
                "big": [
                    {
                        "status": f.status,
                        "reason": f.reason,
                        "findings": [x.message for x in f.findings],
                    }
                    for f in v.files
                    if f.path == "data/big.py"
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
