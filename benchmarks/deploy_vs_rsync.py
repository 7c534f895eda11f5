"""gatebot deploy vs rsync over the same loopback OpenSSH sshd, side by side in one run.

    python3 benchmarks/deploy_vs_rsync.py                 # 10,000 files, ~100 MB
    python3 benchmarks/deploy_vs_rsync.py --files 2000    # a quicker run

Scenarios (shared/DESIGN.md §7):
1. first release            gatebot deploy          vs  rsync -a   (into an empty directory)
2. one changed file         gatebot deploy          vs  rsync -a -c
3. redeploy of the live sha gatebot deploy (no transfer)
4. rollback                 gatebot rollback (no transfer)

Both tools log in as the same user with the same key and the same pinned host key. Times are
wall clock from the client's side, connection set-up included. Bytes: gatebot's upload stream
(tar headers included) vs rsync's "Total bytes sent" from --stats.
"""

from __future__ import annotations

import argparse
import asyncio
import io
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

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config.load import parse_config
from bot.deploy import flow
from bot.deploy.manifest import build_manifest
from bot.deploy.progress import Reporter
from bot.deploy.report import HostReport
from tests.fakes.sshd import SshServer, start_sshd

_SIG = pygit2.Signature("bench", "bench@example.invalid", 1_700_000_000, 0)


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


def rsync(server: SshServer, src: Path, dest: str, *flags: str) -> tuple[float, int]:
    ssh = (
        f"ssh -p {server.port} -i {server.client_key} -o UserKnownHostsFile={server.known_hosts} "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes"
    )
    start = time.perf_counter()
    res = subprocess.run(
        ["rsync", *flags, "--stats", "-e", ssh, f"{src}/", f"{server.user}@127.0.0.1:{dest}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    took = time.perf_counter() - start
    m = re.search(r"Total bytes sent: ([\d,.]+)", res.stdout)
    return took, int(m.group(1).replace(",", "").replace(".", "")) if m else -1


def gatebot_ctx(
    server: SshServer, path: Path, repo: Path, *, prepare_next: bool = True
) -> flow.DeployContext:
    config = parse_config(
        {
            "deploy": {
                "targets": {
                    "bench": {
                        "host": "127.0.0.1",
                        "port": server.port,
                        "user": server.user,
                        "path": str(path),
                        "identity_file": str(server.client_key),
                        "known_hosts_file": str(server.known_hosts),
                        "python": sys.executable,
                        "venv_args": "--system-site-packages --without-pip",
                        "install": "true",
                        "keep_releases": 5,
                        "prepare_next": prepare_next,
                    }
                }
            }
        }
    )
    return flow.DeployContext(
        config=config,
        env={},
        base=repo,
        reporter=Reporter(plain=True, stream=io.StringIO()),
        repo_path=repo,
        run_id="bench",
        audit=False,
    )


def timed_deploy(ctx: flow.DeployContext, repo: Path, ref: str) -> tuple[float, HostReport]:
    start = time.perf_counter()
    # As `gatebot deploy` does: the manifest is read from git while the host is connected to.
    report = asyncio.run(flow.deploy(ctx, ["bench"], lambda: build_manifest(repo, ref))).hosts[0]
    took = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"gatebot deploy failed: {report.error}")
    return took, report


def settle(target: Path, live: str | None, timeout: float = 120.0) -> None:
    """Wait until the host finished preparing the next seed in the background (see
    `prepare_next`): nothing of one tool's run may still be writing while the other is timed."""
    deadline = time.monotonic() + timeout
    while True:
        names = [p.name for p in (target / "releases").glob(".next-*")]
        done = live is None or names == [f".next-{live}"]
        if done and not any(".tmp-" in n for n in names):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the background preparation did not finish: {names}")
        time.sleep(0.05)


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


def one_round(
    n: int,
    server: SshServer,
    work: Path,
    repo_dir: Path,
    tree: dict[str, bytes],
    rows: dict[str, Row],
) -> None:
    """One round of every scenario, on fresh target directories. Even rounds time gatebot
    first, odd rounds rsync first, so neither always runs on the warmer cache."""
    repo = pygit2.Repository(str(repo_dir))
    src = work / "src"
    g_dir, r_dir = work / "host" / f"gatebot-{n}", work / "host" / f"rsync-{n}"
    ctx = gatebot_ctx(server, g_dir, repo_dir)
    first_sha = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)

    def pair(
        name: str, deploy: Callable[[], tuple[float, HostReport]], prepared: bool, *flags: str
    ) -> HostReport:
        row = rows.setdefault(name, Row(name))

        def run_rsync() -> tuple[float, int]:
            os.sync()  # neither tool pays for the other's (or the set-up's) write-back
            return rsync(server, src, str(r_dir), *flags)

        def run_gatebot() -> tuple[float, HostReport]:
            os.sync()
            g, rep = deploy()
            settle(g_dir, rep.live if prepared else None)
            return g, rep

        if n % 2:
            s, b = run_rsync()
            g, rep = run_gatebot()
        else:
            g, rep = run_gatebot()
            s, b = run_rsync()
        row.gatebot.append(g)
        row.rsync.append(s)
        row.gatebot_bytes, row.rsync_bytes, row.phases = rep.bytes_sent, b, rep.phases
        return rep

    pair("first release (rsync -a)", lambda: timed_deploy(ctx, repo_dir, first_sha), True, "-a")

    # One changed file, twice: as deploys run (the seed was prepared after the previous
    # deploy), and with prepare_next off (the seed is linked while you wait).
    for label, prepared in (("", True), (", seed linked while waiting", False)):
        changed = sorted(tree)[len(tree) // 2 + (0 if prepared else 1)]
        data = (src / changed).read_bytes()
        new_content = data[:-1] + bytes([(data[-1] + 1) % 256])
        head = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)
        commit_tree(repo, {changed: new_content}, head)
        (src / changed).write_bytes(new_content)
        c = ctx if prepared else gatebot_ctx(server, g_dir, repo_dir, prepare_next=False)
        rep = pair(
            f"one changed file{label} (rsync -a -c)",
            lambda c=c: timed_deploy(c, repo_dir, "main"),  # type: ignore[misc]
            prepared,
            "-a",
            "-c",
        )
        assert rep.files_sent == 1, rep

    g3, r3 = timed_deploy(ctx, repo_dir, "main")
    assert r3.status == "already-live" and r3.bytes_sent == 0, r3
    settle(g_dir, r3.live)
    row = rows.setdefault("redeploy of the live sha", Row("redeploy of the live sha"))
    row.gatebot.append(g3)

    start = time.perf_counter()
    rb = asyncio.run(flow.rollback(ctx, ["bench"], None)).hosts[0]
    g4 = time.perf_counter() - start
    assert rb.ok and rb.live is not None, rb
    settle(g_dir, rb.live)
    rows.setdefault("rollback", Row("rollback")).gatebot.append(g4)
    # Next round starts from the first commit's tree again (fresh directories).
    shutil.rmtree(g_dir)
    shutil.rmtree(r_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=int, default=None, help="total size (default files/100 MB)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every scenario (medians)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    total_mb = args.mb if args.mb is not None else max(1, args.files // 100)
    work = Path(tempfile.mkdtemp(prefix="gatebot-bench-"))
    server = start_sshd(work / "sshd")
    try:
        print(f"tree: {args.files} files, ~{total_mb} MB; sshd on 127.0.0.1:{server.port}")
        tree = make_tree(args.files, total_mb)
        repo_dir = work / "repo"
        repo = pygit2.init_repository(str(repo_dir), initial_head="main")
        commit_tree(repo, tree, None)
        rows: dict[str, Row] = {}
        for n in range(args.rounds):
            write_files(work / "src", tree)
            if n:
                # Each round deploys the same first tree again.
                head = str(repo.references["refs/heads/main"].peel(pygit2.Commit).id)
                commit_tree(repo, tree, head)
            one_round(n, server, work, repo_dir, tree, rows)
            shutil.rmtree(work / "src")

        print()
        print(f"median of {args.rounds} rounds (ratio: median of the per-round ratios)")
        print(
            f"{'scenario':52} {'gatebot s':>10} {'rsync s':>9} {'ratio':>7} "
            f"{'gatebot bytes':>14} {'rsync bytes':>12}"
        )
        for row in rows.values():
            g = statistics.median(row.gatebot)
            s_med = statistics.median(row.rsync) if row.rsync else None
            ratio = row.ratio()
            print(
                f"{row.name:52} {g:10.3f} {f'{s_med:.3f}' if s_med else '-':>9} "
                f"{f'{ratio:.2f}x' if ratio else '-':>7} {row.gatebot_bytes:>14,} "
                f"{f'{row.rsync_bytes:,}' if row.rsync_bytes is not None else '-':>12}"
            )
        print()
        for row in rows.values():
            if row.rsync:
                each = ", ".join(
                    f"{g:.2f}/{r:.2f}" for g, r in zip(row.gatebot, row.rsync, strict=True)
                )
                print(f"{row.name}: gatebot/rsync s per round: {each}")
                print(f"  phases (last round): {row.phases}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
