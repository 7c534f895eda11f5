#!/usr/bin/env python3
"""Try deploy + audit on one machine: `python3 scripts/sandbox.py`.

Starts a throwaway OpenSSH sshd on 127.0.0.1 (a fresh host key and client key, logging in as
you), a ZeroMQ GTW stand-in and a TCP "service" on loopback, writes a temporary gatebot config
for them, then runs the real CLI: `gatebot deploy` of the repository's HEAD and `gatebot audit`,
prints the audit report, and removes everything it started. Nothing leaves 127.0.0.1.

Options: --repo PATH (default: this checkout), --ref REF (default HEAD), --keep (leave the
sandbox directory for a look; processes are still stopped), --json (print the JSON report).
Exit status: that of `gatebot audit` (0 all layers pass or skip, 1 a layer failed), or the
deploy's when the deploy itself failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.fakes.gtw import GtwServer  # noqa: E402
from tests.fakes.sshd import SshServer, start_sshd  # noqa: E402


def write_config(path: Path, sshd: SshServer, host_dir: Path, gtw: str, service_port: int) -> None:
    config = {
        "deploy": {
            "targets": {
                "sandbox": {
                    "host": "127.0.0.1",
                    "port": sshd.port,
                    "user": sshd.user,
                    "path": str(host_dir),
                    "identity_file": str(sshd.client_key),
                    "known_hosts_file": str(sshd.known_hosts),
                    # The host is this machine: its venvs borrow this interpreter's packages
                    # (pyzmq for the GTW probe), so the install step has nothing to fetch.
                    "python": sys.executable,
                    "venv_args": "--system-site-packages --without-pip",
                    "lock_file": "pyproject.toml",
                    "install": "true",
                    "shared": ["logs"],
                    "keep_releases": 3,
                    "connect_timeout_s": 5,
                }
            }
        },
        "audit": {
            "min_python": "3.10",
            "min_free_disk_mb": 50,
            "binaries": ["sh"],
            "imports": ["bot.errors"],
            "service": {"port": service_port},
            "gtw": {"endpoint": gtw, "socket": "REQ", "pings": 5, "budget_ms": 50},
            "layer_timeout_s": 15,
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def gatebot(args: list[str], env: dict[str, str]) -> int:
    print(f"\n$ gatebot {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="git checkout to deploy")
    parser.add_argument("--ref", default="HEAD", help="commit to deploy (default HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox directory")
    parser.add_argument("--json", action="store_true", help="print the JSON audit report")
    opts = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="gatebot-sandbox-"))
    sshd: SshServer | None = None
    gtw = GtwServer("REP")
    service = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sshd = start_sshd(work / "sshd")
        gtw.start()
        service.bind(("127.0.0.1", 0))
        service.listen(8)
        port = int(service.getsockname()[1])
        config = work / "gatebot.yml"
        write_config(config, sshd, work / "inf", gtw.endpoint, port)
        print(f"sandbox in {work}")
        print(f"  sshd     127.0.0.1:{sshd.port} (user {sshd.user}, pinned host key)")
        print(f"  GTW      {gtw.endpoint} (REP stand-in)")
        print(f"  service  127.0.0.1:{port}")
        env = {**os.environ, "GATEBOT_CACHE_DIR": str(work / "cache")}
        env.pop("GITHUB_STEP_SUMMARY", None)
        common = ["--target", "sandbox", "--config", str(config), "--repo", str(opts.repo)]
        rc = gatebot(["deploy", *common, "--ref", opts.ref], env)
        if rc != 0:
            print(f"\ndeploy failed (exit {rc})", file=sys.stderr)
            return rc
        report = work / "audit.json"
        rc = gatebot(
            ["audit", *common, "--report", str(report), "--markdown", str(work / "audit.md")],
            env,
        )
        print()
        print(report.read_text() if opts.json else (work / "audit.md").read_text())
        return rc
    finally:
        service.close()
        gtw.close()
        if sshd is not None:
            sshd.stop()
        if opts.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
