"""`gatebot deploy` vs `rsync`, each timed as the process a user runs, over the same loopback
OpenSSH sshd, side by side in one run.

    python3 benchmarks/deploy_vs_rsync.py                   # 10,000 files, ~100 MB, 6 rounds
    python3 benchmarks/deploy_vs_rsync.py --files 2000      # a quicker run
    python3 benchmarks/deploy_vs_rsync.py --json out.json   # also write every timing

Scenarios (shared/DESIGN.md §7), each round on fresh target directories:
1. first release              `gatebot deploy`            vs  `rsync -a`    (empty directory)
2. first release, tmpfs       the same with both targets on /dev/shm: CPU-bound, not disk-bound;
                              also with nothing kept and gatebot started cold (`ssh_persist_s:
                              0`, GATEBOT_RESIDENT=0: a CI job's first deploy)
3. one changed file           `gatebot deploy`            vs  `rsync -a -c`; also with gatebot
                              started cold (`GATEBOT_RESIDENT=0`: the connection kept, no
                              resident gatebot; a CI job's first command), with nothing kept
                              (`ssh_persist_s: 0`, cold too) and pruning two old releases
                              (`keep_releases: 2`: the steady state of a host that deploys often)
4. one changed file, no seed  the same with `prepare_next: false` (the seed linked while waiting)
5. no-op                      `gatebot deploy` of the live sha  vs  `rsync -a` with nothing new
6. rollback                   `gatebot rollback` (no transfer; absolute target < 0.3 s)

Both are timed the same way: `subprocess.run` of the command, start to exit (interpreter
start-up, imports, config, connection and host program included for gatebot; ssh start-up and
the remote rsync for rsync). With the default `ssh_persist_s` the first gatebot command
starts a resident gatebot (bot/cli/resident.py) and the later ones run in it; the *nothing
kept* and *started cold* rows run without one. gatebot runs with `--no-audit`, `install: true` and a
`--without-pip` venv: the release mechanics. Both log in as the same user with the same key and
the same pinned host key. In each round the two tools of a scenario run back to back, in
alternating order, after `sync`, and after the host finished preparing the next seed in the
background (`prepare_next`), so neither is timed while the other's work still runs. The figure
is the median of the per-round ratios. Bytes: gatebot's upload stream (its report) vs rsync's
"Total bytes sent" (--stats).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.deploy.hostside.protocol import TRASH_PREFIX
from tests.fakes.sshd import SshServer, start_sshd

_SIG = pygit2.Signature("bench", "bench@example.invalid", 1_700_000_000, 0)
GATEBOT = str(Path(sys.executable).with_name("gatebot"))


def make_tree(files: int, total_mb: int, seed: int = 7) -> dict[str, bytes]:
    """A deterministic tree: mostly small files, some larger, ~total_mb in all."""
    rng = random.Random(seed)
    target = total_mb * 1024 * 1024
    weights = [rng.lognormvariate(0, 1.2) for _ in range(files)]
    scale = target / sum(weights)
    tree: dict[str, bytes] = {}
    for i, w in enumerate(weights):
        size = max(1, int(w * scale))
        path = f"pkg{i % 50:02d}/mod{(i // 50) % 20:02d}/file{i:05d}.dat"
        tree[path] = rng.randbytes(size)
    return tree


def commit_tree(repo: pygit2.Repository, tree: dict[str, bytes], parent: str | None) -> str:
    index = pygit2.Index()
    if parent:
        index.read_tree(repo[parent].peel(pygit2.Commit).tree)
    for path, data in tree.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
    oid = repo.create_commit(
        "refs/heads/main",
        _SIG,
        _SIG,
        "bench",
        index.write_tree(repo),
        [pygit2.Oid(hex=parent)] if parent else [],
    )
    return str(oid)


def write_files(root: Path, tree: dict[str, bytes]) -> None:
    for path, data in tree.items():
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def run_rsync(server: SshServer, src: Path, dest: Path, *flags: str) -> tuple[float, int]:
    ssh = (
        f"ssh -p {server.port} -i {server.client_key} -o UserKnownHostsFile={server.known_hosts} "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes"
    )
    argv = ["rsync", *flags, "--stats", "-e", ssh, f"{src}/", f"{server.user}@127.0.0.1:{dest}/"]
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"rsync failed ({res.returncode}): {res.stderr[-2000:]}")
    m = re.search(r"Total bytes sent: ([\d,.]+)", res.stdout)
    return took, int(m.group(1).replace(",", "").replace(".", "")) if m else -1


@dataclass
class Gatebot:
    """`gatebot` as a user runs it: its own process, a config file, a clean environment."""

    server: SshServer
    work: Path
    repo: Path
    env: dict[str, str]

    def config(
        self, target: Path, *, prepare_next: bool = True, persist: bool = True, keep: int = 5
    ) -> Path:
        import yaml

        data = {
            "deploy": {
                "targets": {
                    "bench": {
                        "host": "127.0.0.1",
                        "port": self.server.port,
                        "user": self.server.user,
                        "path": str(target),
                        "identity_file": str(self.server.client_key),
                        "known_hosts_file": str(self.server.known_hosts),
                        "python": sys.executable,
                        "venv_args": "--system-site-packages --without-pip",
                        "install": "true",
                        "keep_releases": keep,
                        "prepare_next": prepare_next,
                        # ssh_persist_s: the default keeps the connection and the host
                        # program warm for the next command; 0 measures every run cold.
                        **({} if persist else {"ssh_persist_s": 0}),
                    }
                }
            }
        }
        path = self.work / f"gatebot-{target.name}-{int(prepare_next)}{int(persist)}{keep}.yml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def run(self, config: Path, *args: str, cold: bool = False) -> tuple[float, dict[str, Any]]:
        """`cold`: no resident gatebot (GATEBOT_RESIDENT=0), the process starts from nothing."""
        report = self.work / "report.json"
        report.unlink(missing_ok=True)
        argv = [GATEBOT, *args, "--target", "bench", "--repo", str(self.repo)]
        argv += ["--config", str(config), "--no-audit", "--report", str(report)]
        start = time.perf_counter()
        env = {**self.env, "GATEBOT_RESIDENT": "0"} if cold else self.env
        res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        took = time.perf_counter() - start
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
        host: dict[str, Any] = json.loads(report.read_text())["hosts"][0]
        return took, host


def settle(target: Path, live: str | None, timeout: float = 120.0) -> None:
    """Wait until the host finished preparing the next seed in the background (see
    `prepare_next`): nothing of one tool's run may still be writing while the other is timed."""
    deadline = time.monotonic() + timeout
    while True:
        names = [p.name for p in (target / "releases").glob(".next-*")]
        done = live is None or names == [f".next-{live}"]
        # What retention set aside is deleted in the background too (hostside/fsops.py).
        gone = TRASH_PREFIX + "*"
        trash = [p.name for d in ("releases", "venvs") for p in (target / d).glob(gone)]
        if done and not trash and not any(".tmp-" in n for n in names):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the background work did not finish: {names + trash} (live {live})")
        time.sleep(0.02)


@dataclass
class Row:
    name: str
    gatebot: list[float] = field(default_factory=list)
    rsync: list[float] = field(default_factory=list)
    gatebot_bytes: int = 0
    rsync_bytes: int | None = None
    phases: dict[str, float] = field(default_factory=dict)

    def ratio(self) -> float | None:
        """Median of the per-round ratios (each round times both tools back to back)."""
        if not self.rsync:
            return None
        return statistics.median(g / r for g, r in zip(self.gatebot, self.rsync, strict=True))


@dataclass
class Bench:
    server: SshServer
    work: Path
    gatebot: Gatebot
    rows: dict[str, Row] = field(default_factory=dict)

    def pair(
        self,
        n: int,
        name: str,
        deploy: Callable[[], tuple[float, dict[str, Any]]],
        g_dir: Path,
        rsync: Callable[[], tuple[float, int]],
        prepared: bool = True,
    ) -> dict[str, Any]:
        """Both tools on one scenario, back to back; even rounds gatebot first."""
        row = self.rows.setdefault(name, Row(name))

        def time_rsync() -> tuple[float, int]:
            os.sync()  # neither tool pays for the other's (or the set-up's) write-back
            return rsync()

        def time_gatebot() -> tuple[float, dict[str, Any]]:
            os.sync()
            took, rep = deploy()
            settle(g_dir, rep.get("live") if prepared else None)
            return took, rep

        if n % 2:
            s, b = time_rsync()
            g, rep = time_gatebot()
        else:
            g, rep = time_gatebot()
            s, b = time_rsync()
        row.gatebot.append(g)
        row.rsync.append(s)
        row.gatebot_bytes, row.rsync_bytes, row.phases = rep["bytes_sent"], b, rep["phases"]
        return rep

    def alone(self, name: str, took: float, rep: dict[str, Any]) -> None:
        row = self.rows.setdefault(name, Row(name))
        row.gatebot.append(took)
        row.gatebot_bytes, row.phases = rep["bytes_sent"], rep["phases"]


def one_round(
    n: int, bench: Bench, repo_dir: Path, tree: dict[str, bytes], tmpfs: Path | None
) -> None:
    server, work, gb = bench.server, bench.work, bench.gatebot
    repo = pygit2.Repository(str(repo_dir))
    src = work / "src"
    first_sha = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)

    if tmpfs is not None:
        # Both targets in memory: the first release is bound by CPU (both ends share the
        # machine's cores), not by the disk.
        tg, tr = tmpfs / f"gatebot-{n}", tmpfs / f"rsync-{n}"
        cfg = gb.config(tg)
        bench.pair(
            n,
            "first release, targets on tmpfs (rsync -a)",
            lambda: gb.run(cfg, "deploy", "--ref", first_sha),
            tg,
            lambda: run_rsync(server, src, tr, "-a"),
        )
        shutil.rmtree(tg)
        shutil.rmtree(tr)
        # The same with nothing kept and gatebot started cold: what the first deploy of a CI
        # job pays (the runner ends a job's processes, so nothing is up when the next starts).
        cfg = gb.config(tg, persist=False)
        bench.pair(
            n,
            "first release, tmpfs, nothing kept, started cold (rsync -a)",
            lambda: gb.run(cfg, "deploy", "--ref", first_sha, cold=True),
            tg,
            lambda: run_rsync(server, src, tr, "-a"),
        )
        shutil.rmtree(tg)
        shutil.rmtree(tr)

    g_dir, r_dir = work / "host" / f"gatebot-{n}", work / "host" / f"rsync-{n}"
    cfg = gb.config(g_dir)
    bench.pair(
        n,
        "first release (rsync -a)",
        lambda: gb.run(cfg, "deploy", "--ref", first_sha),
        g_dir,
        lambda: run_rsync(server, src, r_dir, "-a"),
    )

    # One changed file, three times: as deploys run (the seed was prepared after the previous
    # deploy, the connection and host program kept from it), with nothing kept (ssh_persist_s:
    # 0: a new connection, login shell and interpreter), and with prepare_next off (the seed is
    # linked while you wait).
    kept, cold = cfg, gb.config(g_dir, persist=False)
    variants = (
        ("", kept, True, False),
        # The connection and host program kept, gatebot itself started cold: what the first
        # gatebot command of a CI job pays.
        (", gatebot started cold (GATEBOT_RESIDENT=0)", kept, True, True),
        (", nothing kept (ssh_persist_s: 0)", cold, True, True),
        # Four releases by now: keep_releases 2 has this deploy prune two of them, as every
        # deploy does once a host holds keep_releases (the steady state).
        (", two old releases pruned (keep_releases: 2)", gb.config(g_dir, keep=2), True, False),
        (", seed linked while waiting", gb.config(g_dir, prepare_next=False), False, False),
    )
    for k, (label, c, prepared, started_cold) in enumerate(variants):
        changed = sorted(tree)[len(tree) // 2 + k]
        data = (src / changed).read_bytes()
        new_content = data[:-1] + bytes([(data[-1] + 1) % 256])
        head = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)
        commit_tree(repo, {changed: new_content}, head)
        (src / changed).write_bytes(new_content)
        rep = bench.pair(
            n,
            f"one changed file{label} (rsync -a -c)",
            lambda c=c, sc=started_cold: gb.run(c, "deploy", "--ref", "main", cold=sc),  # type: ignore[misc]
            g_dir,
            lambda: run_rsync(server, src, r_dir, "-a", "-c"),
            prepared,
        )
        assert rep["files_sent"] == 1, rep
    # The last variant left no seed prepared: a deploy that prepares one puts it back.
    _took, again = gb.run(cfg, "deploy", "--ref", "main")
    settle(g_dir, again["live"])

    for label, c in (("", cfg), (", nothing kept", cold)):
        rep = bench.pair(
            n,
            f"no-op: redeploy of the live sha{label} (rsync -a)",
            lambda c=c: gb.run(c, "deploy", "--ref", "main", cold=c == cold),  # type: ignore[misc]
            g_dir,
            lambda: run_rsync(server, src, r_dir, "-a"),
        )
        assert rep["status"] == "already-live" and rep["bytes_sent"] == 0, rep

    for label, c in (("", cfg), (", nothing kept", cold)):
        os.sync()
        took, rb = gb.run(c, "rollback", cold=c == cold)
        assert rb["ok"] and rb["live"], rb
        settle(g_dir, rb["live"])
        bench.alone(f"rollback{label}", took, rb)
    # Next round starts from the first commit's tree again (fresh directories).
    shutil.rmtree(g_dir)
    shutil.rmtree(r_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=int, default=None, help="total size (default files/100 MB)")
    # Even: each tool goes first in as many rounds as the other. On a disk the first tool to
    # write after a round's set-up (the source tree written, the last round's trees deleted)
    # is slower, whichever it is: 5 rounds gave one tool that slot three times.
    ap.add_argument("--rounds", type=int, default=6, help="rounds of every scenario (medians)")
    ap.add_argument("--no-tmpfs", action="store_true", help="skip the tmpfs first release")
    ap.add_argument("--json", type=Path, default=None, help="write every timing here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not Path(GATEBOT).exists():
        raise SystemExit(f"no gatebot command beside {sys.executable}: pip install -e .")
    total_mb = args.mb if args.mb is not None else max(1, args.files // 100)
    work = Path(tempfile.mkdtemp(prefix="gatebot-bench-"))
    shm = Path("/dev/shm")
    tmpfs = None if args.no_tmpfs or not shm.is_dir() else Path(tempfile.mkdtemp(dir=shm))
    server = start_sshd(work / "sshd")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GATEBOT_"))}
    env.pop("CI", None)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        print(f"tree: {args.files} files, ~{total_mb} MB; sshd on 127.0.0.1:{server.port}")
        tree = make_tree(args.files, total_mb)
        repo_dir = work / "repo"
        repo = pygit2.init_repository(str(repo_dir), initial_head="main")
        commit_tree(repo, tree, None)
        bench = Bench(server, work, Gatebot(server, work, repo_dir, env))
        for n in range(args.rounds):
            write_files(work / "src", tree)
            if n:
                # Each round deploys the same first tree again.
                head = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)
                commit_tree(repo, tree, head)
            one_round(n, bench, repo_dir, tree, tmpfs)
            shutil.rmtree(work / "src")
        load_after = os.getloadavg()
        report(bench.rows, args.rounds, started, load_before, load_after, args.json)
    finally:
        server.stop()
        if tmpfs is not None:
            shutil.rmtree(tmpfs, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


def report(
    rows: dict[str, Row],
    rounds: int,
    started: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    json_out: Path | None,
) -> None:
    print()
    print(
        f"{started}; load average before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}; {os.cpu_count()} CPUs"
    )
    print(f"median of {rounds} rounds (ratio: median of the per-round ratios)")
    print(
        f"{'scenario':48} {'gatebot s':>10} {'rsync s':>9} {'ratio':>7} "
        f"{'gatebot bytes':>14} {'rsync bytes':>12}"
    )
    for row in rows.values():
        g = statistics.median(row.gatebot)
        s_med = statistics.median(row.rsync) if row.rsync else None
        ratio = row.ratio()
        print(
            f"{row.name:48} {g:10.3f} {f'{s_med:.3f}' if s_med else '-':>9} "
            f"{f'{ratio:.2f}x' if ratio else '-':>7} {row.gatebot_bytes:>14,} "
            f"{f'{row.rsync_bytes:,}' if row.rsync_bytes is not None else '-':>12}"
        )
    print()
    for row in rows.values():
        if row.rsync:
            pairs = zip(row.gatebot, row.rsync, strict=True)
            each = ", ".join(f"{g:.2f}/{r:.2f}" for g, r in pairs)
            print(f"{row.name}: gatebot/rsync s per round: {each}")
        else:
            print(f"{row.name}: gatebot s per round: {', '.join(f'{g:.3f}' for g in row.gatebot)}")
        print(f"  phases (last round): {row.phases}")
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {
                    "started": started,
                    "load_before": load_before,
                    "load_after": load_after,
                    "rounds": rounds,
                    "rows": {
                        r.name: {
                            "gatebot_s": r.gatebot,
                            "rsync_s": r.rsync,
                            "ratio": r.ratio(),
                            "gatebot_bytes": r.gatebot_bytes,
                            "rsync_bytes": r.rsync_bytes,
                        }
                        for r in rows.values()
                    },
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
