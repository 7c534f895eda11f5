"""Layer 3: the host can run a release: Python version, free disk and memory, required binaries."""

from __future__ import annotations

import shlex

from bot.audit.context import AuditContext, Outcome, failed, parse_json_line, passed
from bot.ssh.remote import run_bounded, tail
from bot.ssh.session import quote

# Run by the host's interpreter (target.python). Python 3.6 syntax so an old host can answer.
HOST_SCRIPT = r"""
import json, os, platform, sys
path = sys.argv[1]
probe = path
while probe and not os.path.isdir(probe):
    probe = os.path.dirname(probe)
st = os.statvfs(probe or "/")
mem = None
try:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                mem = int(line.split()[1]) / 1024.0
except OSError:
    mem = None  # no /proc/meminfo (not Linux): memory is not judged
print(json.dumps({"python": platform.python_version(), "executable": sys.executable,
                  "disk_path": probe, "free_mb": st.f_bavail * st.f_frsize / 1048576.0,
                  "mem_mb": mem}))
"""

# `command -v` is the POSIX way to ask the shell what it would run; missing ones are listed.
_BINARIES = 'for b in "$@"; do command -v "$b" >/dev/null 2>&1 || echo "missing-binary $b"; done'


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def host_command(python: str, path: str, binaries: list[str]) -> str:
    script = f"{_BINARIES}; exec {shlex.quote(python)} - {shlex.quote(path)}"
    return quote(["sh", "-c", script, "sh", *binaries])


async def check_host(ctx: AuditContext) -> Outcome:
    audit, target = ctx.audit, ctx.target
    res = await run_bounded(
        ctx.ssh(),
        host_command(target.python, target.path, audit.binaries),
        input=HOST_SCRIPT,
        timeout=ctx.timeout_of("host"),
    )
    missing = [
        line.split(" ", 1)[1].strip()
        for line in res.stdout.splitlines()
        if line.startswith("missing-binary ")
    ]
    facts = parse_json_line(res.stdout)
    if facts is None:
        why = tail(res.stderr) or f"exit {res.exit_status}"
        return failed(
            f"cannot run {target.python} on the host ({why}); install Python "
            f">= {audit.min_python} or set deploy.targets.{ctx.name}.python"
        )
    problems: list[str] = []
    version = str(facts.get("python", "0"))
    if _version(version) < _version(audit.min_python):
        problems.append(
            f"{target.python} is Python {version}, below audit.min_python {audit.min_python}"
        )
    free_mb = float(facts.get("free_mb") or 0)
    if free_mb < audit.min_free_disk_mb:
        problems.append(
            f"only {free_mb:.0f} MB free at {facts.get('disk_path')}, below "
            f"audit.min_free_disk_mb {audit.min_free_disk_mb} (prune releases: keep_releases, "
            "or free space)"
        )
    mem = facts.get("mem_mb")
    if audit.min_free_memory_mb:
        if mem is None:
            problems.append("cannot read available memory (/proc/meminfo) on the host")
        elif float(mem) < audit.min_free_memory_mb:
            problems.append(
                f"only {float(mem):.0f} MB memory available, below audit.min_free_memory_mb "
                f"{audit.min_free_memory_mb}"
            )
    if missing:
        problems.append(f"required binaries not on PATH: {', '.join(missing)} (audit.binaries)")
    data = {
        "python": version,
        "free_disk_mb": round(free_mb, 1),
        "available_memory_mb": round(float(mem), 1) if mem is not None else None,
        "missing_binaries": missing,
    }
    if problems:
        return failed("; ".join(problems), **data)
    mem_txt = f", {float(mem):.0f} MB memory available" if mem is not None else ""
    bins = f", {len(audit.binaries)} required binaries found" if audit.binaries else ""
    return passed(f"Python {version}, {free_mb:.0f} MB free disk{mem_txt}{bins}", **data)
