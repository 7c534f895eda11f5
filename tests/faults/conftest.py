"""Fault-matrix fixtures: the deploy environment of tests/deploy, reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder


@pytest.fixture
def denv(sshd: SshServer, tmp_path: Path) -> DeployEnv:
    rb = RepoBuilder(tmp_path / "repo")
    return DeployEnv(sshd, tmp_path, rb, tmp_path / "host" / "inf", tmp_path / "installs.log")
