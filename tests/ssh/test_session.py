"""The SSH layer against a real loopback OpenSSH sshd: pinned host keys and key auth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.errors import ConfigError, HostKeyMismatch, TransportError
from bot.ssh import load_credentials, open_session
from tests.fakes.sshd import SshServer


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_runs_command_with_pinned_key(sshd: SshServer, tmp_path: Path) -> None:
    target = sshd.target(tmp_path)
    creds = load_credentials("inf", target, {}, tmp_path)

    async def go() -> str:
        async with open_session("inf", target, creds) as s:
            res = await s.run(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
            assert res.exit_status == 3
            assert res.stderr.strip() == "oops"
            return res.stdout

    assert _run(go()).strip() == "hello"


def test_wrong_host_key_is_refused_and_names_host(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_known_hosts"
    # A valid key that is not the server's: the client key's public half.
    pub = (sshd.root / "id_ed25519.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    target = sshd.target(tmp_path, known_hosts_file=str(other))
    creds = load_credentials("inf", target, {}, tmp_path)

    async def go() -> None:
        async with open_session("inf", target, creds):
            pass

    with pytest.raises(HostKeyMismatch, match=r"127\.0\.0\.1"):
        _run(go())


def test_key_from_env_and_unknown_key_refused(sshd: SshServer, tmp_path: Path) -> None:
    import subprocess

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    target = sshd.target(tmp_path, identity_file=None, identity_env="GATEBOT_SSH_KEY")
    creds = load_credentials("inf", target, {"GATEBOT_SSH_KEY": stranger.read_text()}, tmp_path)

    async def go() -> None:
        async with open_session("inf", target, creds):
            pass

    with pytest.raises(TransportError, match="refused") as info:
        _run(go())
    assert "PRIVATE KEY" not in str(info.value)


def test_missing_key_env_is_config_error(sshd: SshServer, tmp_path: Path) -> None:
    target = sshd.target(tmp_path, identity_file=None, identity_env="NOPE_KEY")
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        load_credentials("inf", target, {}, tmp_path)


def test_garbage_key_is_config_error_without_echo(sshd: SshServer, tmp_path: Path) -> None:
    target = sshd.target(tmp_path, identity_file=None, identity_env="K")
    with pytest.raises(ConfigError) as info:
        load_credentials("inf", target, {"K": "not-a-key-SECRET123"}, tmp_path)
    assert "SECRET123" not in str(info.value)


def test_closed_port_is_transport_error(sshd: SshServer, tmp_path: Path) -> None:
    from tests.fakes.sshd import free_port

    target = sshd.target(tmp_path, port=free_port())
    creds = load_credentials("inf", target, {}, tmp_path)

    async def go() -> None:
        async with open_session("inf", target, creds):
            pass

    with pytest.raises(TransportError, match="cannot connect"):
        _run(go())
