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

With `persist_s` > 0 the connection is kept open that long after the command ends (OpenSSH's
ControlMaster/ControlPersist, as Ansible does by default), so the next gatebot command to the
same host, with the same key and pinned host key, skips the key exchange. Its control socket
lives in a private per-user directory, named by a hash of everything the connection was
authenticated with.

Light on purpose (no pydantic, no asyncio): `gatebot deploy` starts `ssh` from here before it
has imported the rest of itself (bot/cli/deploy.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, GatebotError, HostKeyMismatch, TransportError
from bot.privatedir import memory_dir, user_dir
from bot.ssh.sources import pinned_hosts, read_source

if TYPE_CHECKING:
    from bot.config.deploy import TargetConfig

_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%-]+$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$")


def ssh_binary() -> str | None:
    return shutil.which("ssh")


@dataclass(frozen=True)
class LoginSpec:
    """What reaching a target takes (a part of its TargetConfig)."""

    host: str
    port: int
    user: str
    identity_file: str | None
    identity_env: str | None
    known_hosts_file: str | None
    known_hosts_env: str | None
    connect_timeout_s: float
    persist_s: float

    @classmethod
    def of(cls, target: TargetConfig) -> LoginSpec:
        return cls(
            target.host,
            target.port,
            target.user,
            target.identity_file,
            target.identity_env,
            target.known_hosts_file,
            target.known_hosts_env,
            target.connect_timeout_s,
            target.ssh_persist_s,
        )

    @classmethod
    def early(cls, raw: Any) -> LoginSpec | None:
        """From a target's raw config mapping, before validation; None unless every value is
        plainly what validation will accept (the caller compares with `of(target)` after)."""
        if not isinstance(raw, dict):
            return None
        values = {
            "host": raw.get("host"),
            "port": raw.get("port", 22),
            "user": raw.get("user"),
            "identity_file": raw.get("identity_file"),
            "identity_env": raw.get("identity_env"),
            "known_hosts_file": raw.get("known_hosts_file"),
            "known_hosts_env": raw.get("known_hosts_env"),
            "connect_timeout_s": raw.get("connect_timeout_s", 10.0),
            "persist_s": raw.get("ssh_persist_s", 60.0),
        }
        text = ("host", "user")
        optional = ("identity_file", "identity_env", "known_hosts_file", "known_hosts_env")
        if not all(isinstance(values[k], str) for k in text):
            return None
        if not all(values[k] is None or isinstance(values[k], str) for k in optional):
            return None
        number = ("connect_timeout_s", "persist_s")
        if not isinstance(values["port"], int) or isinstance(values["port"], bool):
            return None
        if not all(isinstance(values[k], int | float) for k in number):
            return None
        values["connect_timeout_s"] = float(values["connect_timeout_s"])
        values["persist_s"] = float(values["persist_s"])
        return cls(**values)


def _private_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gatebot-ssh-", dir=str(_memory_dir())))


def _memory_dir() -> Path:
    return memory_dir()


def _control_dir() -> Path | None:
    """The per-user directory of persisted connections' control sockets (0700, ours)."""
    return user_dir(_memory_dir(), "gatebot-ssh")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


@dataclass
class Login:
    """How to reach one target with `ssh`: the argv before the remote command, and the private
    files it names (removed by `close`)."""

    name: str
    spec: LoginSpec
    base: list[str]  # `ssh` and its flags
    options: dict[str, str]  # its -o options
    directory: Path | None
    pinned: tuple[str, ...] = field(default=())
    #: The kept connection's control socket (None: nothing is kept).
    control_path: str | None = None

    @property
    def argv(self) -> list[str]:
        """`ssh` with everything but the remote command."""
        return _argv(self.base, self.options, self.spec.host)

    def command(self, remote: str) -> list[str]:
        """The argv that runs `remote` (one shell command line) on the target."""
        return [*self.argv, remote]

    def alone(self) -> Login:
        """This login on a connection of its own (not through nor kept as a shared one): the
        way back when a kept connection misbehaved."""
        options = {**self.options, "ControlMaster": "no", "ControlPath": "none"}
        options.pop("ControlPersist", None)
        return dataclasses.replace(self, options=options, control_path=None)

    def forward(self, port: int) -> list[str]:
        """The argv that connects stdin/stdout to the host's loopback `port` (no shell runs).
        It uses a kept connection but never becomes one: `ssh -W` as a master tells the server
        it will open no sessions, and the next command's could not start on it."""
        options = dict(self.options)
        if options.get("ControlMaster") == "auto":
            options["ControlMaster"] = "no"
            options.pop("ControlPersist", None)
        return [
            *_argv(self.base, options, self.spec.host)[:-2],
            "-W",
            f"127.0.0.1:{port}",
            "--",
            self.spec.host,
        ]

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _argv(base: list[str], options: dict[str, str], host: str) -> list[str]:
    argv = list(base)
    for key_name, value in options.items():
        argv += ["-o", f"{key_name}={value}"]
    return [*argv, "--", host]


def prepare_login(
    name: str, spec: LoginSpec, env: Mapping[str, str], base: Path, ssh: str
) -> Login:
    """Read the key and pinned host keys, write them where only we can read them, and build
    the `ssh` argv. ConfigError for a missing or unusable source, never its content."""
    prefix = f"deploy.targets.{name}"
    if not _HOST.match(spec.host) or spec.host.startswith("-"):
        raise ConfigError(f"{prefix}.host: {spec.host!r} is not a host name or address")
    if not _USER.match(spec.user):
        raise ConfigError(f"{prefix}.user: {spec.user!r} is not a user name")
    key = read_source(f"{prefix}.identity", spec.identity_file, spec.identity_env, env, base)
    if "PRIVATE KEY-----" not in key:
        raise ConfigError(f"{prefix}: the SSH private key could not be parsed")
    hosts = read_source(
        f"{prefix}.known_hosts", spec.known_hosts_file, spec.known_hosts_env, env, base
    )
    pinned = pinned_hosts(hosts)
    if not pinned:
        raise ConfigError(f"{prefix}: known_hosts has no entries; host keys must be pinned")
    # OpenSSH wants LF line ends and a final newline; secrets pasted on Windows have CRLF.
    key = key.replace("\r\n", "\n").rstrip("\n") + "\n"
    hosts = hosts.replace("\r\n", "\n").rstrip("\n") + "\n"
    directory = _private_dir()
    try:
        key_file, hosts_file = directory / "id", directory / "known_hosts"
        _write_private(key_file, key)
        _write_private(hosts_file, hosts)
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise TransportError(f"{name}: cannot write the SSH login files: {exc}") from None
    timeout = max(1, round(spec.connect_timeout_s))
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
    control = _control_dir() if spec.persist_s > 0 else None
    control_path = None
    if control is not None:
        # Everything the connection was authenticated with names it: another key, another
        # pinned host key or another address never reuses it.
        digest = hashlib.sha256(
            "\0".join([spec.user, spec.host, str(spec.port), key, hosts]).encode()
        ).hexdigest()[:24]
        control_path = str(control / digest)
        options.update(
            ControlMaster="auto",
            ControlPath=str(control / digest),
            ControlPersist=f"{max(1, round(spec.persist_s))}s",
        )
    flags = [ssh, "-F", "/dev/null", "-T", "-e", "none", "-p", str(spec.port), "-l", spec.user]
    return Login(name, spec, flags, options, directory, pinned, control_path)


@dataclass
class Spawned:
    """An `ssh` process running a remote command; its stderr goes to a file beside the login's
    private files."""

    login: Login
    proc: subprocess.Popen[bytes]
    stderr_path: Path


def spawn(login: Login, remote: str | None = None, port: int | None = None) -> Spawned:
    """Start `ssh` running `remote`, or connected to the host's loopback `port`, with pipes for
    stdin and stdout (no event loop needed)."""
    assert login.directory is not None
    stderr_path = login.directory / "stderr"
    try:
        with stderr_path.open("wb") as err:
            argv = login.forward(port) if port is not None else login.command(remote or "true")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                # Its own session: a Ctrl-C or a cancelled job signals gatebot, which then
                # lets go of the lock over this connection before closing it.
                start_new_session=True,
            )
    except OSError as exc:
        login.close()
        raise TransportError(f"{login.name}: cannot start {login.argv[0]}: {exc}") from None
    return Spawned(login, proc, stderr_path)


def login_error(login: Login, status: int | None, stderr: str) -> GatebotError | None:
    """What a failed `ssh` said, as our error; None when the failure was not ssh's own (the
    remote command ran and failed: the caller says what it was)."""
    name, spec = login.name, login.spec
    where = f"{spec.user}@{spec.host}:{spec.port}"
    text = stderr.strip()
    if status != 255 and "Host key verification failed" not in text:
        return None
    if "Host key verification failed" in text or "HOST IDENTIFICATION HAS CHANGED" in text:
        return HostKeyMismatch(
            f"{name}: host key of {spec.host}:{spec.port} does not match the pinned "
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
