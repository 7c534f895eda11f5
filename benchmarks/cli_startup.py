"""What a user waits for before any work: `gatebot --help`, and `gatebot review` of a one-file
push with an instant model, each timed as a process (start to exit), side by side with
`git diff --stat` of the same range in the same run.

    python3 benchmarks/cli_startup.py               # 9 rounds, medians
    python3 benchmarks/cli_startup.py --rounds 21

Targets (the architecture issue): `gatebot --help` ≤ 0.3 s; the one-file review ≤ 1.0 s
median. The model is the loopback Gemini server (tests/fakes/gemini.py), which answers at once,
so the figure is gatebot's own start-up, git reads, triage, cache, one call and outputs. Each
round pushes a new one-file change (a cache miss: one model call); the cache directory is kept
between rounds as actions/cache keeps it (the models list within its TTL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.gemini import FakeGemini  # noqa: E402
from tests.gitrepo import RepoBuilder  # noqa: E402

GATEBOT = [sys.executable, "-m", "bot"]


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr[-800:]}")
    return took


def make_repo(root: Path) -> RepoBuilder:
    """A small project with history."""
    rb = RepoBuilder(root)
    files = {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(40)}
    rb.commit({**files, "README.md": "# demo\n"}, message="base")
    return rb


def push_one_file(rb: RepoBuilder, n: int) -> None:
    rb.commit({"pkg/mod7.py": f"def f7(x):\n    return x * {n + 2}\n"}, message=f"push {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gatebot-startup-"))
    gemini = FakeGemini().start()
    try:
        rb = make_repo(work / "repo")
        repo = rb.path
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "GEMINI_", "GOOGLE_", "GATEBOT_"))
        }
        env.update(GEMINI_API_KEY=gemini.api_key, GOOGLE_GEMINI_BASE_URL=gemini.url)
        env.update(GATEBOT_CACHE_DIR=str(work / "cache"))
        review = [*GATEBOT, "review", "--base", "HEAD~1", "--head", "HEAD", "--out", "out"]
        rows: dict[str, list[float]] = {"git diff --stat": [], "gatebot --help": [], "review": []}
        push_one_file(rb, 0)
        timed(review, repo, env)  # warm the models list, as a cache restored from a run before
        for n in range(1, args.rounds + 1):  # alternate, so machine load hits all alike
            push_one_file(rb, n)
            rows["git diff --stat"].append(
                timed(["git", "diff", "--stat", "HEAD~1", "HEAD"], repo, env)
            )
            rows["gatebot --help"].append(timed([*GATEBOT, "--help"], repo, env))
            rows["review"].append(timed(review, repo, env))
        made = gemini.stats.ok_calls
        git = statistics.median(rows["git diff --stat"])
        print(f"{args.rounds} rounds, medians (model calls made: {made})")
        print(f"{'command':44} {'median s':>9} {'min s':>7} {'x git diff --stat':>18}")
        names = {
            "git diff --stat": "git diff --stat HEAD~1 HEAD",
            "gatebot --help": "gatebot --help",
            "review": "gatebot review (one-file push, instant model)",
        }
        for key, times in rows.items():
            med = statistics.median(times)
            print(f"{names[key]:44} {med:9.3f} {min(times):7.3f} {med / git:17.1f}x")
    finally:
        gemini.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
