"""The suite on a machine without OpenSSH (a laptop, no root): every decision test still runs,
the wire tests skip, and the run ends with one line saying what was not run and what installs
it. Under CI=true a missing sshd fails instead. (GATEBOT_TEST_SSHD points the fixtures at an
sshd that is not there.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTION = [
    "tests/deploy/test_decisions.py",
    "tests/deploy/test_deploy.py::test_first_deploy_lays_out_a_complete_release",
    "tests/deploy/test_deploy.py::test_dry_run_changes_nothing",
]


def _pytest(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["GATEBOT_TEST_SSHD"] = "/nonexistent/sshd"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_without_sshd_decisions_run_and_the_last_line_says_what_did_not() -> None:
    run = _pytest(ci=False)
    assert run.returncode == 0, run.stdout[-3000:]
    lines = run.stdout.strip().splitlines()
    assert "2 skipped" in lines[-2] and " passed" in lines[-2] and "failed" not in lines[-2]
    assert lines[-1].startswith("not run here: 2 tests that need OpenSSH sshd"), lines[-1]
    assert "install: apt-get install openssh-server" in lines[-1]


def test_under_ci_a_missing_sshd_fails() -> None:
    run = _pytest(ci=True)
    assert run.returncode == 1
    assert "2 errors" in run.stdout.splitlines()[-1] and "skipped" not in run.stdout
    assert "OpenSSH sshd (not found at /nonexistent/sshd" in run.stdout
