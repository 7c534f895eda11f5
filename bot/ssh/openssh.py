"""OpenSSH's `ssh` command as a transport: the same pinned host key and deploy key as the
asyncssh client (bot/ssh/credentials.py), for commands whose bytes should not pass through
this Python process's own SSH stack.

Why: `ssh` starts in a few milliseconds and does the key exchange in another process, while
gatebot is still importing and reading git (asyncssh alone takes ~0.2 s to import), and it
encrypts a bulk upload on another core. It is what rsync uses, against the same sshd.

Nothing of the user's SSH setup is read: no ssh_config (`-F /dev/null`), no agent, no default
keys, no known_hosts but the pinned entries, no forwarding, no escape character (the channel
carries binary frames). The key and the pinned entries are written to a private directory
(0700, files 0600, in /dev/shm when there is one) that `Login.close()` removes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.deploy import TargetConfig
from bot.errors import ConfigError, GatebotError, HostKeyMismatch, TransportError
from bot.ssh.sources import pinned_hosts, read_source

_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%-]+$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$")


def ssh_binary() -> str | None:
    return shutil.which("ssh")


def _private_dir() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private (0700) directory in it
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    return Path(tempfile.mkdtemp(prefix="gatebot-ssh-", dir=where))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


@dataclass
class Login:
    """How to reach one target with `ssh`: the argv before the remote command, and the private
    files it names (removed by `close`)."""

    name: str
    target: TargetConfig
    argv: list[str]
    directory: Path | None
    pinned: tuple[str, ...] = field(default=())

    def command(self, remote: str) -> list[str]:
        """The argv that runs `remote` (one shell command line) on the target."""
        return [*self.argv, remote]

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def prepare_login(
    name: str, target: TargetConfig, env: Mapping[str, str], base: Path, ssh: str
) -> Login:
    """Read the key and pinned host keys, write them where only we can read them, and build
    the `ssh` argv. ConfigError for a missing or unusable source, never its content."""
    prefix = f"deploy.targets.{name}"
    if not _HOST.match(target.host) or target.host.startswith("-"):
        raise ConfigError(f"{prefix}.host: {target.host!r} is not a host name or address")
    if not _USER.match(target.user):
        raise ConfigError(f"{prefix}.user: {target.user!r} is not a user name")
    key = read_source(f"{prefix}.identity", target.identity_file, target.identity_env, env, base)
    if "PRIVATE KEY-----" not in key:
        raise ConfigError(f"{prefix}: the SSH private key could not be parsed")
    hosts = read_source(
        f"{prefix}.known_hosts", target.known_hosts_file, target.known_hosts_env, env, base
    )
    pinned = pinned_hosts(hosts)
    if not pinned:
        raise ConfigError(f"{prefix}: known_hosts has no entries; host keys must be pinned")
    directory = _private_dir()
    try:
        key_file, hosts_file = directory / "id", directory / "known_hosts"
        # OpenSSH wants LF line ends and a final newline; secrets pasted on Windows have CRLF.
        _write_private(key_file, key.replace("\r\n", "\n").rstrip("\n") + "\n")
        _write_private(hosts_file, hosts.replace("\r\n", "\n").rstrip("\n") + "\n")
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise TransportError(f"{name}: cannot write the SSH login files: {exc}") from None
    timeout = max(1, round(target.connect_timeout_s))
    options = {
        "BatchMode": "yes",
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "IdentityFile": str(key_file),
        "PubkeyAuthentication": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "HostbasedAuthentication": "no",
        "GSSAPIAuthentication": "no",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(hosts_file),
        "GlobalKnownHostsFile": "/dev/null",
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        # AES-GCM first: with AES-NI it costs both ends less CPU than chacha20-poly1305 (the
        # default) for a bulk upload; every OpenSSH server offers all of these.
        "Ciphers": "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
        "aes128-ctr,aes256-ctr",
        "ConnectTimeout": str(timeout),
        "ServerAliveInterval": "15",
        "ServerAliveCountMax": "3",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "ClearAllForwardings": "yes",
        "PermitLocalCommand": "no",
        "ProxyCommand": "none",
        "LogLevel": "ERROR",
    }
    argv = [ssh, "-F", "/dev/null", "-T", "-e", "none", "-p", str(target.port), "-l", target.user]
    for key_name, value in options.items():
        argv += ["-o", f"{key_name}={value}"]
    argv += ["--", target.host]
    return Login(name, target, argv, directory, pinned)


def login_error(login: Login, status: int | None, stderr: str) -> GatebotError | None:
    """What a failed `ssh` said, as our error; None when the failure was not ssh's own (the
    remote command ran and failed: the caller says what it was)."""
    name, target = login.name, login.target
    where = f"{target.user}@{target.host}:{target.port}"
    text = stderr.strip()
    if status != 255 and "Host key verification failed" not in text:
        return None
    if "Host key verification failed" in text or "HOST IDENTIFICATION HAS CHANGED" in text:
        return HostKeyMismatch(
            f"{name}: host key of {target.host}:{target.port} does not match the pinned "
            f"known_hosts entries ({', '.join(login.pinned)})",
            hint="verify the host key out of band and update the pinned known_hosts",
        )
    if "invalid format" in text or "Load key" in text:
        return ConfigError(f"deploy.targets.{name}: the SSH private key could not be parsed")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return TransportError(
            f"{name}: key authentication as {where} was refused",
            hint="install the deploy public key in the user's authorized_keys",
        )
    last = text.splitlines()[-1] if text else f"ssh exited with {status}"
    return TransportError(f"{name}: cannot connect to {where}: {last[-300:]}")
