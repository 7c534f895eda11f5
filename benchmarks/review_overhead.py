"""The review gate's own overhead on a large pull request, side by side with `git diff --stat`.

The target (shared/DESIGN.md §7): without model latency, the gate on a 1,000-file PR takes at
most 3x `git diff --stat` of the same range. "Without model latency" is measured as what it
is: the whole pipeline with no provider (diff, triage, the local reviewer's checks, verdict,
metrics, summary, run history), as `gatebot review` runs with no API key.

Both are timed in the same run, alternately, on the same generated repository, so machine
load hits both alike; the ratio of the best times is the figure (medians shown too). Peak
memory is measured in a separate, untimed run (tracemalloc slows Python down).

    python3 benchmarks/review_overhead.py                  # 1,000 files, 7 rounds
    python3 benchmarks/review_overhead.py --files 2000 --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.model import GatebotConfig  # noqa: E402
from bot.review.pipeline import run_review  # noqa: E402
from tests.gitrepo import RepoBuilder  # noqa: E402
from tests.provider.prgen import FEATURE, module, text  # noqa: E402


def build_pr(root: Path, files: int, lines: int, seed: int = 3) -> Path:
    """main with `files` Python modules; the PR changes one line in each (like
    benchmarks/review_replay.py's 1,000-file PR, but at a random function of the module, not
    always the first: the syntax check's cost depends on where the change is), a few of them
    only by reformatting."""
    rng = random.Random(seed)
    rb = RepoBuilder(root)
    tree = {f"src/p{i % 20}/m{i}.py": module(rng, f"m{i}", lines) for i in range(files)}
    base = rb.commit({p: text(ls) for p, ls in tree.items()}, message="base")
    change = {}
    for n, (p, ls) in enumerate(tree.items()):
        new = list(ls)
        idx = rng.choice([i for i, ln in enumerate(new) if ln.strip() == "total = 0.0"])
        # Every 50th file is only reformatted (free in triage, needs the AST comparison; a
        # comment added would be a change: formatting.python_comments).
        new[idx] = "    total=0.0" if n % 50 == 0 else "    total = 1.0"
        change[p] = text(new)
    rb.commit(change, branch=FEATURE, parents=[base], message="the PR")
    return rb.path


def git_diff_stat(repo: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["git", "-C", str(repo), "diff", "--stat", f"main...{FEATURE}"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the forked worker)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def gate(
    repo: Path, cache: Path, config: GatebotConfig, workers: int | None = None
) -> tuple[float, int, float]:
    """(wall seconds, files, CPU seconds): CPU time moves much less than wall time when other
    work shares the machine, so it is the figure to compare code changes by."""
    started, cpu = time.perf_counter(), _cpu()
    run = run_review(repo, "main", FEATURE, config, cache, None, workers=workers)
    return time.perf_counter() - started, run.verdict.metrics.files_total, _cpu() - cpu


def cli(repo: Path, cache: Path, out: Path) -> float:
    """`python -m bot review` as a user runs it: interpreter start-up and imports included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = ["--repo", str(repo), "--base", "main", "--head", FEATURE]
    args += ["--out", str(out), "--cache-dir", str(cache)]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot", "review", *args],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - started


def peak_memory(repo: Path, cache: Path, config: GatebotConfig) -> float:
    tracemalloc.start()
    try:
        run_review(repo, "main", FEATURE, config, cache, None)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=1000, help="files changed by the PR")
    ap.add_argument("--lines", type=int, default=60, help="lines per file")
    ap.add_argument("--repeat", type=int, default=7, help="timed rounds (each: git, then gate)")
    ap.add_argument(
        "--workers", type=int, help="processes for the free stages (default: the gate's choice)"
    )
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    config = GatebotConfig()
    with tempfile.TemporaryDirectory(prefix="gatebot-overhead-") as tmp:
        root = Path(tmp)
        repo = build_pr(root / "repo", args.files, args.lines)
        cache = root / "cache"
        gate(
            repo, cache, config, args.workers
        )  # warm-up: imports, the OS page cache, regex compilation
        git_diff_stat(repo)
        git_s: list[float] = []
        gate_s: list[float] = []
        cpu_s: list[float] = []
        files = 0
        for _ in range(args.repeat):
            git_s.append(git_diff_stat(repo))
            seconds, files, cpu = gate(repo, cache, config, args.workers)
            gate_s.append(seconds)
            cpu_s.append(cpu)
        cli_s = min(cli(repo, cache, root / "out") for _ in range(3))
        peak_mb = peak_memory(repo, cache, config)
    figures = {
        "files": files,
        "git_diff_stat_best_s": min(git_s),
        "git_diff_stat_median_s": statistics.median(git_s),
        "gate_best_s": min(gate_s),
        "gate_median_s": statistics.median(gate_s),
        "ratio_best": min(gate_s) / min(git_s),
        "ratio_median": statistics.median(gate_s) / statistics.median(git_s),
        "gate_cpu_best_s": min(cpu_s),
        "cli_best_s": cli_s,
        "python_peak_mb": peak_mb,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(f"gate overhead without model latency, {files:,}-file PR ({args.repeat} rounds)\n")
    print(f"{'':32} {'best':>9} {'median':>9}")
    print(
        f"{'git diff --stat main...feature':32} {figures['git_diff_stat_best_s'] * 1000:7.1f}ms "
        f"{figures['git_diff_stat_median_s'] * 1000:7.1f}ms"
    )
    print(
        f"{'gate (run_review, no provider)':32} {figures['gate_best_s'] * 1000:7.1f}ms "
        f"{figures['gate_median_s'] * 1000:7.1f}ms"
    )
    print(
        f"{'ratio (target <= 3x)':32} {figures['ratio_best']:8.2f}x {figures['ratio_median']:8.2f}x"
    )
    print(f"{'gate CPU time (all processes)':32} {figures['gate_cpu_best_s'] * 1000:7.1f}ms")
    print(f"\n`python -m bot review` end to end (start-up + imports included): {cli_s:.2f} s")
    rss = figures["max_rss_mb"]
    print(f"python peak (tracemalloc) {peak_mb:.0f} MB; process max RSS {rss:.0f} MB")
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cpu(s))")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
