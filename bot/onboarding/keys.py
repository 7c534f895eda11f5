"""The deploy key pair and the host-key pinning instructions for `init --deploy-target`.

The private key goes to a file created 0600 (never printed, never inside the repository where
it could be committed). A key file that already exists is reused, not replaced: rotating a key
that is already installed on the host would lock the deploys out, so that is a deliberate
manual step (delete the file), and a re-run of init stays a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bot.errors import UsageError
from bot.onboarding.init import KNOWN_HOSTS_ENV, SSH_KEY_ENV, DeployTargetSpec


@dataclass(frozen=True)
class DeployKey:
    path: Path
    public_line: str  # `ssh-ed25519 AAAA… comment`, for the host's authorized_keys
    fingerprint: str
    created: bool


def default_key_path(target: str) -> Path:
    return Path("~/.ssh").expanduser() / f"gatebot_{target}_ed25519"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _describe(key: asyncssh.SSHKey, path: Path, created: bool) -> DeployKey:
    public = key.export_public_key("openssh").decode("ascii").strip()
    return DeployKey(path, public, key.get_fingerprint("sha256"), created)


def ensure_deploy_key(path: Path, comment: str, repo_root: Path) -> DeployKey:
    """Create an ed25519 key pair at `path` (0600) or reuse the one already there."""
    if _inside(path, repo_root):
        raise UsageError(
            f"--key-file {path}: inside the repository, where it could be committed",
            hint="keep the private key outside the work tree (default ~/.ssh/)",
        )
    if path.exists():
        try:
            key = asyncssh.read_private_key(str(path))
        except (asyncssh.KeyImportError, OSError, ValueError):
            raise UsageError(
                f"--key-file {path}: exists but is not a readable unencrypted private key",
                hint="pick another --key-file, or remove this one if it is not in use",
            ) from None
        return _describe(key, path, created=False)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL + mode 0600 at creation: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    pub = path.with_name(path.name + ".pub")
    pub.write_bytes(key.export_public_key("openssh"))
    return _describe(key, path, created=True)


def keyscan_command(target: DeployTargetSpec) -> str:
    return f"ssh-keyscan -p {target.port} -t ed25519 {target.host}"


def pinning_instructions(target: DeployTargetSpec, key: DeployKey) -> list[str]:
    """What to do with the key pair and how to pin the host key, as printable lines."""
    where = f"{target.user}@{target.host}"
    created = "created" if key.created else "reusing"
    return [
        f"Deploy key ({created}): {key.path}  (mode 0600; it is never printed)",
        f"  fingerprint {key.fingerprint}",
        f"1. Install this public key for {where} (append to ~{target.user}/.ssh/authorized_keys):",
        f"     {key.public_line}",
        f"2. Store the private key as the repository secret {SSH_KEY_ENV}:",
        f"     gh secret set {SSH_KEY_ENV} < {key.path}",
        f"3. Pin the host key of {target.host} (gatebot never trusts a key on first use):",
        f"     {keyscan_command(target)} > {target.name}_known_hosts",
        "   Verify the fingerprint out of band: compare",
        f"     ssh-keygen -lf {target.name}_known_hosts",
        "   with what an administrator reads ON the host (console, not over this network):",
        "     ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
        f"   Only when they match, store it as the secret {KNOWN_HOSTS_ENV}:",
        f"     gh secret set {KNOWN_HOSTS_ENV} < {target.name}_known_hosts",
    ]
