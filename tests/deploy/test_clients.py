"""The two SSH clients a deploy can use (bot/deploy/host/connect.py) over the loopback sshd:
OpenSSH's `ssh` command (the default where it is installed) and asyncssh in-process. Same
host program, same pinned keys, same errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from bot.deploy.host.openssh import OpenSshConnector
from bot.deploy.hostside.protocol import Inspect
from bot.errors import ConfigError, HostKeyMismatch
from bot.ssh.openssh import prepare_login, ssh_binary
from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer, free_port

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "lib/util.py": "X = 1\n", "requirements.txt": ""}


def _ssh() -> str:
    found = ssh_binary()
    assert found is not None, "OpenSSH's ssh client is installed with openssh-server"
    return found


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_deploy_change_and_rollback_over_each_client(denv: DeployEnv, client: str) -> None:
    denv.overrides["ssh_client"] = client
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    denv.rb.commit({"lib/util.py": "X = 2\n"})
    second = denv.deploy()
    assert second.ok and second.files_sent == 1, second.error
    assert (denv.current / "lib/util.py").read_text() == "X = 2\n"
    back = denv.rollback()
    assert back.ok and denv.live() == first.release


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_a_key_the_host_does_not_know_is_refused(denv: DeployEnv, client: str) -> None:
    stranger = denv.tmp / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    denv.overrides.update(ssh_client=client, identity_file=None, identity_env="GATEBOT_SSH_KEY")
    denv.rb.commit(BASE)
    r = denv.deploy(ctx=denv.ctx(env={"GATEBOT_SSH_KEY": stranger.read_text()}))
    assert not r.ok and r.exit_code == 3 and r.error_type == "TransportError"
    assert "refused" in (r.error or "") and "PRIVATE KEY" not in (r.error or "")
    assert not denv.root.exists()


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_an_unparseable_key_is_a_config_error_that_never_echoes_it(
    denv: DeployEnv, client: str
) -> None:
    denv.overrides.update(ssh_client=client, identity_file=None, identity_env="K")
    denv.rb.commit(BASE)
    junk = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET123notakey\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    r = denv.deploy(ctx=denv.ctx(env={"K": junk}))
    assert not r.ok and r.exit_code == 2 and r.error_type == "ConfigError", r.error
    assert "SECRET123" not in (r.error or "")


def test_wrong_pinned_host_key_over_asyncssh_too(denv: DeployEnv) -> None:
    other = denv.tmp / "other_known_hosts"
    pub = (denv.sshd.root / "id_ed25519.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{denv.sshd.port} {pub[0]} {pub[1]}\n")
    denv.overrides.update(known_hosts_file=str(other), ssh_client="asyncssh")
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.error_type == HostKeyMismatch.__name__ and "pinned" in (r.error or "")


def test_a_closed_port_is_a_transport_error(denv: DeployEnv) -> None:
    denv.overrides.update(port=free_port())
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.exit_code == 3 and "cannot connect" in (r.error or ""), r.error


def test_openssh_asked_for_but_not_installed_is_a_usage_error(
    denv: DeployEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    denv.overrides["ssh_client"] = "openssh"
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.exit_code == 2 and "no `ssh` is on PATH" in (r.error or "")
    # auto falls back to asyncssh
    denv.overrides["ssh_client"] = "auto"
    assert denv.deploy().ok


def test_login_files_are_private_lf_terminated_and_removed(sshd: SshServer, tmp_path: Path) -> None:
    key = (sshd.client_key).read_text()
    loose = tmp_path / "key-readable-by-all"
    loose.write_text(key.replace("\n", "\r\n").rstrip("\r\n"))  # CRLF, no final newline
    loose.chmod(0o644)  # ssh refuses such a file; gatebot copies it into a private one
    target = sshd.target(tmp_path / "srv", identity_file=str(loose))
    login = prepare_login("inf", target, {}, tmp_path, _ssh())
    assert login.directory is not None
    files = sorted(login.directory.iterdir())
    assert oct(login.directory.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    text = (login.directory / "id").read_text()
    assert "\r" not in text and text.endswith("-----\n")
    assert "-F" in login.argv and "/dev/null" in login.argv and login.argv[-2] == "--"
    directory = login.directory
    login.close()
    assert not directory.exists()


def test_hosts_and_users_that_could_be_read_as_options_are_refused(
    sshd: SshServer, tmp_path: Path
) -> None:
    for bad in ({"host": "-oProxyCommand=touch /tmp/x"}, {"host": "a b"}, {"user": "-x"}):
        target = sshd.target(tmp_path, **bad)
        with pytest.raises(ConfigError):
            prepare_login("inf", target, {}, tmp_path, _ssh())


def test_prestarted_connection_is_taken_and_unused_ones_are_stopped(
    sshd: SshServer, tmp_path: Path
) -> None:
    target = sshd.target(tmp_path / "srv")
    connector = OpenSshConnector({}, tmp_path, _ssh())

    async def go() -> tuple[int, bool]:
        await connector.prestart("inf", target)
        await connector.prestart("other", target)
        started = connector._ready["inf"][1]
        unused = connector._ready["other"][1]
        async with connector.connect("inf", target) as agent:
            answer = await agent.inspect(Inspect(str(tmp_path / "srv")))
            assert answer.exists is False
            directory = started.login.directory
            assert directory is not None and directory.exists()
        assert started.proc.returncode is not None  # the ssh process ended with the agent
        await connector.aclose()
        assert unused.proc.returncode is not None and unused.login.directory is None
        return started.proc.pid, directory.exists()

    pid, still_there = asyncio.run(go())
    assert not still_there
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_or_empty_login_sources_fail_before_any_connection(
    sshd: SshServer, tmp_path: Path
) -> None:
    target = sshd.target(tmp_path, identity_file=None, identity_env="NOPE")
    with pytest.raises(ConfigError, match="NOPE"):
        prepare_login("inf", target, {}, tmp_path, _ssh())
    target = sshd.target(tmp_path, known_hosts_file=None, known_hosts_env="KH")
    with pytest.raises(ConfigError, match="no entries"):
        prepare_login("inf", target, {"KH": "# only a comment\n"}, tmp_path, _ssh())
