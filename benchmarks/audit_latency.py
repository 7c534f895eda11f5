"""How long the 9-layer audit takes against the loopback OpenSSH sshd (target: < 3 s, DESIGN §7).

    python3 benchmarks/audit_latency.py              # deploy this checkout's HEAD, audit 10 times
    python3 benchmarks/audit_latency.py --runs 30

Sets up what scripts/sandbox.py does (throwaway sshd, GTW stand-in, a listening "service"),
deploys HEAD once with the real deploy flow, then runs `audit_target` (a fresh SSH connection
each time, as `gatebot audit` does) and prints the wall-clock median / p95 / max and the median
of each layer. The audit runs independent layers concurrently on one connection; `pip check`
is usually the longest layer.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.audit.report import LAYER_IDS, AuditReport
from bot.audit.run import audit_target
from bot.config.load import parse_config
from bot.deploy import flow
from bot.deploy.manifest import build_manifest
from bot.deploy.progress import Reporter
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import start_sshd


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _accept_forever(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:  # closed at the end of the run
            return
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gatebot-audit-bench-"))
    sshd = start_sshd(work / "sshd")
    gtw = GtwServer("REP").start()
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen(8)
    # Accept and drop connections as a real service would: a backlog that is never drained
    # fills after a few audits and the service layer's connects then time out.
    threading.Thread(target=_accept_forever, args=(service,), daemon=True).start()
    try:
        target = sshd.target(work / "inf").model_dump(exclude_none=True)
        target.update(
            python=sys.executable,
            venv_args="--system-site-packages --without-pip",
            lock_file="pyproject.toml",
            install="true",
        )
        config = parse_config(
            {
                "deploy": {"targets": {"inf": target}},
                "audit": {
                    "min_free_disk_mb": 10,
                    "binaries": ["sh"],
                    "imports": ["bot.errors"],
                    "service": {"port": service.getsockname()[1]},
                    "gtw": {"endpoint": gtw.endpoint},
                },
            }
        )
        ctx = flow.DeployContext(
            config=config,
            env={},
            base=work,
            reporter=Reporter(plain=True, stream=io.StringIO()),
            repo_path=opts.repo,
            audit=False,
        )
        manifest = build_manifest(opts.repo, "HEAD")
        deployed = asyncio.run(flow.deploy(ctx, ["inf"], manifest)).hosts[0]
        if not deployed.ok:
            print(f"deploy failed: {deployed.error}", file=sys.stderr)
            return 1
        tcfg = config.deploy.targets["inf"]
        walls: list[float] = []
        reports: list[AuditReport] = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            report = asyncio.run(
                audit_target("inf", tcfg, config.audit, opts.repo, manifest.sha, {}, work)
            )
            walls.append(time.perf_counter() - start)
            reports.append(report)
            if not report.passed:
                print(report.summary_line(), file=sys.stderr)
                return 1
        print(f"{opts.runs} audits of {len(manifest)} files, all nine layers passing")
        print(
            f"wall clock: median {statistics.median(walls):.2f}s  p95 {_pct(walls, 0.95):.2f}s  "
            f"max {max(walls):.2f}s  (target < 3 s)"
        )
        for layer_id in LAYER_IDS:
            ms = [r.layer(layer_id).duration_ms for r in reports]
            print(f"  {layer_id:13} median {statistics.median(ms):7.0f} ms")
        return 0
    finally:
        service.close()
        gtw.close()
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
