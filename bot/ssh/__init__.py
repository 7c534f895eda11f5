"""SSH transport shared by deploy, audit and doctor: pinned host keys, key auth, one connection."""

from bot.ssh.credentials import Credentials, load_credentials
from bot.ssh.session import CommandResult, SSHSession, open_session

__all__ = ["CommandResult", "Credentials", "SSHSession", "load_credentials", "open_session"]
