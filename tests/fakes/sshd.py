"""A real OpenSSH sshd on 127.0.0.1, started by fixtures, with a generated host key and user key.

In CI (CI=true) a missing sshd FAILS the tests that need it; elsewhere they skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config.deploy import TargetConfig
from tests.conftest import require

# GATEBOT_TEST_SSHD points elsewhere to try the suite as on a machine without OpenSSH.
SSHD = os.environ.get("GATEBOT_TEST_SSHD") or shutil.which("sshd") or "/usr/sbin/sshd"


def require_sshd() -> None:
    if not Path(SSHD).exists():
        require(
            f"OpenSSH sshd (not found at {SSHD}) to test the wire",
            "apt-get install openssh-server",
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                # sshd greets first; reading the banner proves it is sshd and ready.
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not start listening on 127.0.0.1:{port}")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class SshServer:
    """A running sshd plus everything a TargetConfig needs to reach it."""

    root: Path
    port: int
    user: str
    host_key_pub: str
    client_key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts_line(self) -> str:
        return self.known_hosts.read_text()

    def target(self, path: Path | str, **overrides: Any) -> TargetConfig:
        data: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "path": str(path),
            "identity_file": str(self.client_key),
            "known_hosts_file": str(self.known_hosts),
            "connect_timeout_s": 5,
        }
        data.update(overrides)
        return TargetConfig.model_validate(data)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_sshd(root: Path) -> SshServer:
    require_sshd()
    root.mkdir(parents=True, exist_ok=True)
    # sshd refuses to start without its privilege-separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True) if os.geteuid() == 0 else None
    host_key = root / "ssh_host_ed25519_key"
    client_key = root / "id_ed25519"
    _keygen(host_key, "gatebot-test-host")
    _keygen(client_key, "gatebot-test-client")
    authorized = root / "authorized_keys"
    authorized.write_text((root / "id_ed25519.pub").read_text())
    authorized.chmod(0o600)
    user = getpass.getuser()
    last_error = ""
    for _attempt in range(5):
        port = free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {user}",
                    "StrictModes no",
                    "UsePAM no",
                    "PrintMotd no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 100",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        log = (root / "sshd.log").open("ab")
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
        except RuntimeError as exc:
            last_error = f"{exc}; log: {(root / 'sshd.log').read_text()[-2000:]}"
            proc.kill()
            proc.wait()
            continue
        pub = (root / "ssh_host_ed25519_key.pub").read_text().split()
        known_hosts = root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        return SshServer(
            root=root,
            port=port,
            user=user,
            host_key_pub=f"{pub[0]} {pub[1]}",
            client_key=client_key,
            known_hosts=known_hosts,
            proc=proc,
        )
    raise RuntimeError(f"could not start sshd: {last_error}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole session (the 'Inf' host); tests use their own tmp dirs as paths."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """For tests that stop or break their own sshd."""
    started: list[SshServer] = []

    def make() -> SshServer:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
