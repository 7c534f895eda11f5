"""One exception tree for gatebot. Each class carries the process exit code it maps to.

Exit codes are a public contract (README.md, docs/review.md, docs/deploy.md):
0 pass or neutral, 1 the gate failed the change / the deploy or audit failed,
2 usage or configuration error, 3 infrastructure error that no fallback could absorb.
"""

from __future__ import annotations


class GatebotError(Exception):
    """Base of every error gatebot raises on purpose. Messages are meant for people."""

    exit_code: int = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(GatebotError):
    """The command line was wrong (bad flag combination, unknown target, bad ref)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is missing a required key, has an unknown key or a bad value."""

    exit_code = 2


class GateFailed(GatebotError):
    """The review gate failed the change. Not an error of gatebot: the verdict is `fail`."""

    exit_code = 1


class DeployFailed(GatebotError):
    """A deploy or rollback did not complete; `current` still points at the last good release."""

    exit_code = 1


class AuditFailed(GatebotError):
    """One or more audit layers failed."""

    exit_code = 1


class AlertsFiring(GatebotError):
    """`gatebot metrics --check`: one or more monitoring alerts fire."""

    exit_code = 1


class LockHeld(DeployFailed):
    """Another deploy holds the target's lock."""

    exit_code = 1


class InfrastructureError(GatebotError):
    """Something outside gatebot failed and no fallback could absorb it (network, provider, API)."""

    exit_code = 3


class TransportError(InfrastructureError):
    """SSH connection, authentication or host-key failure, or a remote command that failed."""

    exit_code = 3


class HostKeyMismatch(TransportError):
    """The host presented a key that does not match the pinned known_hosts entry."""

    exit_code = 3


class ProviderError(InfrastructureError):
    """The model provider stayed unavailable after retries."""

    exit_code = 3


class GitHubAPIError(InfrastructureError):
    """The GitHub API failed after retries."""

    exit_code = 3
