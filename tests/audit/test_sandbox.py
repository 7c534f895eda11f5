"""The documented one-command sandbox (`python3 scripts/sandbox.py`) really deploys and audits."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.audit.report import LAYER_IDS
from tests.fakes.sshd import require_sshd

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sandbox_deploys_head_and_audits_all_nine_layers() -> None:
    require_sshd()
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sandbox.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    work = re.search(r"^sandbox in (\S+)$", res.stdout, re.M)
    assert work is not None
    report = json.loads(res.stdout[res.stdout.index("\n{") :])
    assert report["passed"] is True
    assert [layer["id"] for layer in report["layers"]] == list(LAYER_IDS)
    assert {layer["status"] for layer in report["layers"]} == {"pass"}
    assert "current ->" in res.stderr + res.stdout  # the deploy really switched a release
    # Everything it started is gone: its directory, and with it the sshd it ran.
    assert not Path(work.group(1)).exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert work.group(1) not in ps
