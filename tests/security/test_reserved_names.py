"""A commit may hold files named like gatebot's own release bookkeeping (`.gatebot-release.json`,
`.venv`). They are attacker-chosen content on the host: they must never make a release look
complete or good, and a finished release's bookkeeping is always gatebot's own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

pytestmark = pytest.mark.sshd


def _forged_marker(sha: str = "0" * 40) -> str:
    return json.dumps(
        {
            "release": "20990101T000000Z-0000000",
            "sha": sha,
            "ref": "main",
            "lock_hash": "e3b0c44298fc1c14",
            "manifest_digest": "0" * 64,
            "files": 1,
            "created_at": "2099-01-01T00:00:00+00:00",
        }
    )


@pytest.fixture
def denv(sshd: SshServer, tmp_path: Path) -> DeployEnv:
    rb = RepoBuilder(tmp_path / "repo")
    return DeployEnv(sshd, tmp_path, rb, tmp_path / "host" / "inf", tmp_path / "installs.log")


def test_committed_bookkeeping_is_replaced_by_gatebots_own(denv: DeployEnv) -> None:
    sha = denv.rb.commit(
        {
            "requirements.txt": "",
            "app.py": "x = 1\n",
            ".gatebot-release.json": _forged_marker(),
            ".venv": "not a venv\n",
        }
    )
    report = denv.deploy()
    assert report.status == "deployed"
    release = denv.current.resolve()
    marker = json.loads((release / ".gatebot-release.json").read_text())
    assert marker["sha"] == sha and marker["release"] == release.name
    assert (release / ".venv").is_symlink()


def test_a_failed_release_with_a_forged_marker_is_never_used(denv: DeployEnv) -> None:
    denv.rb.commit({"requirements.txt": "", "app.py": "x = 1\n"})
    good = denv.deploy()
    assert good.status == "deployed"
    time.sleep(1.1)  # release ids have one-second resolution
    denv.rb.commit(
        {
            "requirements.txt": "changed\n",
            "app.py": "x = 2\n",
            ".gatebot-release.json": _forged_marker(),
        }
    )
    denv.overrides["install"] = "false"  # the deploy dies after the upload, marker in place
    bad = denv.deploy()
    assert bad.status != "deployed"
    left = denv.root / "releases" / str(bad.release) / ".gatebot-release.json"
    assert left.exists(), "the scenario needs the committed marker on the host"
    assert denv.live() == good.release
    # Asked explicitly, the cut release is refused; `current` stays on the good one.
    refused = denv.rollback(str(bad.release))
    assert refused.status != "rolled-back"
    assert denv.live() == good.release
