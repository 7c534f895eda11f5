"""A one-file `gatebot deploy` of this checkout against another checkout of gatebot, in pairs.

    git worktree add /tmp/before <commit>
    python3 benchmarks/deploy_ab.py --before /tmp/before                   # 12 pairs
    python3 benchmarks/deploy_ab.py --before /tmp/before --log-events 2000  # a long-lived host

A whole-bench run (deploy_vs_rsync.py) gives five rounds of each scenario, too few to resolve a
change of a few percent on a noisy machine. This times only the everyday release, one changed
file, many times: one loopback sshd and the benchmark's tree (deploy_vs_rsync.py), two targets,
one per checkout (each keeps its own warm host program), and in each pair both checkouts deploy
the same kind of change back to back, in alternating order. Each deploy is the `gatebot`
process as a user runs it (`python -c` running the checkout's entry point, `bot.cli.entry`
or, before the resident gatebot, `bot.cli.main`), timed start to exit; the CPU of that process
and its children is reported too (a resident's child is not among them).
`--log-events N` first appends N events of long-gone releases to each target's deploy log.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2
from deploy_vs_rsync import Gatebot, commit_tree, make_tree, settle

from tests.fakes.sshd import start_sshd

CHANGED = "pkg00/mod00/file00000.dat"


def command(checkout: Path, *args: str) -> list[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(checkout)!r}); sys.argv[0] = 'gatebot'\n"
        "try:\n    from bot.cli.entry import run\n"  # the resident's entry, where there is one
        "except ImportError:\n    from bot.cli.main import run\nrun()"
    )
    return [sys.executable, "-c", code, *args]


def old_events(n: int) -> str:
    """`n` deploy-log lines about releases retention removed long ago."""
    return "".join(
        json.dumps(
            {
                "ts": "2026-01-01T00:00:00+00:00",
                "event": ("release", "switch")[i % 2],
                "release": f"20260101T{i // 120 % 24:02d}{i // 2 % 60:02d}00Z-{i // 2:07x}",
                "sha": "0" * 40,
                "ok": True,
            }
        )
        + "\n"
        for i in range(n)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the other gatebot checkout")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--log-events", type=int, default=0)
    args = ap.parse_args()
    checkouts = {"before": args.before.resolve(), "after": Path(__file__).resolve().parents[1]}
    if not (checkouts["before"] / "bot" / "cli" / "main.py").is_file():
        raise SystemExit(f"{args.before} is not a gatebot checkout")
    work = Path(tempfile.mkdtemp(prefix="gatebot-ab-"))
    server = start_sshd(work / "sshd")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GATEBOT_"))}
    env.pop("CI", None)
    try:
        repo_dir = work / "repo"
        repo = pygit2.init_repository(str(repo_dir), initial_head="main")
        commit_tree(repo, make_tree(args.files, max(1, args.files // 100)), None)
        gb = Gatebot(server, work, repo_dir, env)
        configs = {name: gb.config(work / f"target-{name}") for name in checkouts}
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        cpu: dict[str, list[float]] = {name: [] for name in checkouts}

        def deploy(name: str) -> tuple[float, float]:
            argv = command(checkouts[name], "deploy", "--target", "bench", "--repo")
            argv += [str(repo_dir), "--config", str(configs[name]), "--no-audit"]
            settle(work / f"target-{name}", None)
            time.sleep(0.3)
            os.sync()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            took = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if res.returncode != 0:
                raise SystemExit(f"{name}: deploy failed:\n{res.stderr[-3000:]}")
            used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            return took, used

        for name in checkouts:  # the first release, then one warm-up change each
            deploy(name)
            if args.log_events:
                log = work / f"target-{name}" / ".gatebot" / "deploy.jsonl"
                with log.open("a", encoding="utf-8") as fh:
                    fh.write(old_events(args.log_events))
        for n in range(args.pairs + 1):
            order = list(checkouts) if n % 2 else list(checkouts)[::-1]
            for name in order:
                head = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)
                commit_tree(repo, {CHANGED: os.urandom(16_000)}, head)
                took, used = deploy(name)
                if n:  # pair 0 warms both up (the host programs, the blob sizes)
                    times[name].append(took)
                    cpu[name].append(used)
        print(f"{args.pairs} pairs, one changed file, {args.files} files, {os.cpu_count()} CPUs")
        for name in checkouts:
            t, c = times[name], cpu[name]
            print(
                f"{name:7} median {statistics.median(t):.3f} s  client CPU "
                f"{statistics.median(c):.3f} s  ({' '.join(f'{x:.3f}' for x in t)})"
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
