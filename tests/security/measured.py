"""`python -m tests.security.measured RSS_FILE ARGS…`: run `gatebot ARGS…` and, as it exits,
write this process's peak resident memory (MiB) to RSS_FILE.

The peak is VmHWM from /proc/self/status: the high-water mark of this process image. (Linux
keeps getrusage's ru_maxrss across fork and exec, so a child started from a big test process
would report at least the parent's size.)"""

from __future__ import annotations

import atexit
import re
import sys
from pathlib import Path

from bot.cli.main import main


def _write_peak(target: Path) -> None:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, "no VmHWM in /proc/self/status"
    target.write_text(f"{int(match.group(1)) / 1024:.1f}\n")


if __name__ == "__main__":
    atexit.register(_write_peak, Path(sys.argv[1]))
    main(sys.argv[2:])
