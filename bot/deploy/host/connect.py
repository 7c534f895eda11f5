"""How a deploy reaches its real hosts: per target, OpenSSH's `ssh` command when it is installed
(bot/deploy/host/openssh.py), else asyncssh in-process (bot/deploy/host/ssh.py); a target can
choose with `ssh_client`. Both speak to the same host program with the same pinned keys."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.deploy import TargetConfig
from bot.deploy.host.base import HostAgent
from bot.errors import UsageError
from bot.ssh.openssh import ssh_binary

if TYPE_CHECKING:
    from bot.deploy.host.early import Early
    from bot.deploy.host.openssh import OpenSshConnector
    from bot.deploy.host.ssh import SshConnector


class HostConnector:
    """The Connector of real hosts (bot/deploy/host/base.py), one client per target."""

    def __init__(self, env: Mapping[str, str], base: Path) -> None:
        self.env = env
        self.base = base
        self._openssh: OpenSshConnector | None = None
        self._asyncssh: SshConnector | None = None

    def client(self, name: str, target: TargetConfig) -> OpenSshConnector | SshConnector:
        choice = target.ssh_client
        ssh = ssh_binary() if choice != "asyncssh" else None
        if choice == "openssh" and ssh is None:
            raise UsageError(
                f"deploy.targets.{name}.ssh_client is openssh, but no `ssh` is on PATH",
                hint="install openssh-client, or set ssh_client: auto",
            )
        if ssh is not None:
            if self._openssh is None:
                from bot.deploy.host.openssh import OpenSshConnector

                self._openssh = OpenSshConnector(self.env, self.base, ssh)
            return self._openssh
        if self._asyncssh is None:
            from bot.deploy.host.ssh import SshConnector

            self._asyncssh = SshConnector(self.env, self.base)
        return self._asyncssh

    def adopt(self, early: Early, target: TargetConfig) -> bool:
        """Take a connection started before validation (bot/deploy/host/early.py) when the
        target's client is OpenSSH; False when it is not (the caller stops it)."""
        from bot.deploy.host.openssh import OpenSshConnector

        client = self.client(early.name, target)
        if not isinstance(client, OpenSshConnector):
            return False
        client.adopt(early.name, early.ready)
        return True

    async def prestart(self, name: str, target: TargetConfig) -> None:
        """Begin connecting to `name` ahead of need, where the client can (OpenSSH)."""
        from bot.deploy.host.openssh import OpenSshConnector

        client = self.client(name, target)
        if isinstance(client, OpenSshConnector):
            await client.prestart(name, target)

    def connect(self, name: str, target: TargetConfig) -> AbstractAsyncContextManager[HostAgent]:
        return self.client(name, target).connect(name, target)

    async def aclose(self) -> None:
        if self._openssh is not None:
            await self._openssh.aclose()
