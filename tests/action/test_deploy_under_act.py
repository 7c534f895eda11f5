"""The deploy workflow `gatebot init` writes, dispatched by hand under act (host mode).

The self-hosted runner is this machine (`-P self-hosted=-self-hosted`, and the runner label),
the Inf host is the loopback OpenSSH sshd, the deploy key and the pinned known_hosts line are
the workflow's secrets. workflow_dispatch deploys, redeploys the live commit without a transfer,
and rolls back to the previous release.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bot.cli.main import cli
from tests.action.harness import GATEBOT_REPO, GATEBOT_SHA, ActHarness, add_output_recorder
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
LABEL = "inf-deploy"


def _user_repo(tmp: Path, sshd: SshServer, host_root: Path) -> tuple[RepoBuilder, Path]:
    rb = RepoBuilder(tmp / "inf-trader")
    args = [
        "init",
        "--repo",
        str(rb.path),
        "--action",
        f"{GATEBOT_REPO}@{GATEBOT_SHA}",
        "--deploy-target",
        "inf",
        "--host",
        "127.0.0.1",
        "--port",
        str(sshd.port),
        "--user",
        getpass.getuser(),
        "--path",
        str(host_root),
    ]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    workflow = rb.path / ".github" / "workflows" / "deploy.yml"
    add_output_recorder(workflow, "deploy", f"{GATEBOT_REPO}/action/deploy")
    config_path = rb.path / ".github" / "gatebot.yml"
    config = yaml.safe_load(config_path.read_text())
    # The host is this machine: its venv from this interpreter, no package index to install from.
    config["deploy"]["targets"]["inf"].update(
        python=sys.executable,
        venv_args="--system-site-packages --without-pip",
        install="true",
        connect_timeout_s=5,
    )
    config["audit"] = {"min_free_disk_mb": 1}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    files = {
        str(p.relative_to(rb.path)): p.read_text()
        for p in (rb.path / ".github").rglob("*")
        if p.is_file()
    }
    rb.commit({**files, "app.py": "VERSION = 1\n", "requirements.txt": ""}, message="v1")
    rb.checkout("main")
    rb.repo.remotes.create("origin", "https://github.com/octo-org/inf-trader.git")
    return rb, workflow


def _dispatch(inputs: dict[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "inputs": inputs,
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo-org/inf-trader", "default_branch": "main"},
        "sender": {"login": "octocat", "type": "User"},
        "workflow": ".github/workflows/deploy.yml",
    }
    return payload


def test_dispatch_deploy_redeploy_and_rollback_against_the_loopback_host(
    tmp_path: Path, act: ActHarness, sshd: SshServer
) -> None:
    host_root = tmp_path / "inf"
    rb, workflow = _user_repo(tmp_path, sshd, host_root)
    act.secrets.update(
        {
            "GATEBOT_SSH_KEY": sshd.client_key.read_text(),
            "GATEBOT_KNOWN_HOSTS": sshd.known_hosts_line,
        }
    )

    def dispatch(operation: str, **extra: str) -> Any:
        inputs = {"operation": operation, "ref": "", "release": "", **extra}
        result = act.run(
            rb.path,
            workflow,
            "workflow_dispatch",
            _dispatch(inputs),
            inputs=inputs,
            extra_platforms=[LABEL],
        )
        gate = result.gate("deploy")
        assert gate["outcome"] == "success", result.tail(80)
        return result

    first = dispatch("deploy")
    current = host_root / "current"
    assert (current / "app.py").read_text() == "VERSION = 1\n"
    release_1 = current.resolve().name
    assert first.summary().count("### gatebot deploy: ok") == 1
    assert f"| inf | deployed | {release_1} |" in first.summary()
    (checkout,) = first.standin("checkout")
    assert checkout["inputs"]["fetch-depth"] == "0"

    again = dispatch("redeploy")
    assert current.resolve().name == release_1, "the live commit is not released twice"
    assert f"| inf | already-live | {release_1} |" in again.summary()

    rb.commit({"app.py": "VERSION = 2\n"}, message="v2")
    rb.checkout("main")
    dispatch("deploy")
    assert (current / "app.py").read_text() == "VERSION = 2\n"
    assert current.resolve().name != release_1

    back = dispatch("rollback")
    assert current.resolve().name == release_1
    assert "### gatebot rollback: ok" in back.summary()
    assert f"| inf | rolled-back | {release_1} |" in back.summary()
    assert (current / "app.py").read_text() == "VERSION = 1\n"
    key_line = sshd.client_key.read_text().splitlines()[1]
    assert key_line not in back.text()
    # The report lives in the runner's temp directory, removed with the job; its path is set.
    assert back.gate("deploy")["outputs"]["report"].endswith("report.json")
