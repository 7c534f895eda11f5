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
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


def gatebot_ctx(server: SshServer, path: Path, repo: Path) -> flow.DeployContext:
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
    manifest = build_manifest(repo, ref)
    report = asyncio.run(flow.deploy(ctx, ["bench"], manifest)).hosts[0]
    took = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"gatebot deploy failed: {report.error}")
    return took, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=int, default=None, help="total size (default files/100 MB)")
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
        first_sha = commit_tree(repo, tree, None)
        src = work / "src"
        write_files(src, tree)
        ctx = gatebot_ctx(server, work / "host" / "gatebot", repo_dir)
        rows: list[tuple[str, float, float | None, int, int | None]] = []

        g1, r1 = timed_deploy(ctx, repo_dir, first_sha)
        s1, b1 = rsync(server, src, str(work / "host" / "rsync"), "-a")
        rows.append(("first release (rsync -a)", g1, s1, r1.bytes_sent, b1))

        changed = sorted(tree)[len(tree) // 2]
        new_content = tree[changed][:-1] + bytes([(tree[changed][-1] + 1) % 256])
        commit_tree(repo, {changed: new_content}, first_sha)
        (src / changed).write_bytes(new_content)
        g2, r2 = timed_deploy(ctx, repo_dir, "main")
        s2, b2 = rsync(server, src, str(work / "host" / "rsync"), "-a", "-c")
        rows.append(("one changed file (rsync -a -c)", g2, s2, r2.bytes_sent, b2))
        assert r2.files_sent == 1, r2

        g3, r3 = timed_deploy(ctx, repo_dir, "main")
        assert r3.status == "already-live" and r3.bytes_sent == 0, r3
        rows.append(("redeploy of the live sha", g3, None, r3.bytes_sent, None))

        start = time.perf_counter()
        rb = asyncio.run(flow.rollback(ctx, ["bench"], None)).hosts[0]
        g4 = time.perf_counter() - start
        assert rb.ok and rb.live == r1.release, rb
        rows.append(("rollback", g4, None, rb.bytes_sent, None))

        print()
        print(
            f"{'scenario':34} {'gatebot s':>10} {'rsync s':>9} {'ratio':>7} "
            f"{'gatebot bytes':>14} {'rsync bytes':>12}"
        )
        for name, g, s, gb, sb in rows:
            ratio = f"{g / s:.2f}x" if s else "-"
            s_text = f"{s:.3f}" if s is not None else "-"
            sb_text = f"{sb:,}" if sb is not None else "-"
            print(f"{name:34} {g:10.3f} {s_text:>9} {ratio:>7} {gb:>14,} {sb_text:>12}")
        print()
        print(f"changed file: {changed} ({len(new_content):,} bytes)")
        print(f"phases, first release: {r1.phases}")
        print(f"phases, one change:    {r2.phases}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
