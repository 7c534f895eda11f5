"""What the layers share: the target, the session, and the facts earlier layers discovered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.config.audit import AuditConfig
from bot.config.deploy import TargetConfig
from bot.deploy.layout import VENV_LINK, RemoteLayout
from bot.deploy.manifest import Manifest, build_manifest
from bot.errors import GatebotError
from bot.ssh import SSHSession

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def passed(detail: str, **data: Any) -> Outcome:
    return Outcome("pass", detail, data)


def failed(detail: str, **data: Any) -> Outcome:
    return Outcome("fail", detail, data)


def skipped(detail: str, **data: Any) -> Outcome:
    return Outcome("skip", detail, data)


@dataclass
class AuditContext:
    name: str
    target: TargetConfig
    audit: AuditConfig
    expected_sha: str | None = None
    manifest: Manifest | None = None
    repo_path: Path | None = None
    session: SSHSession | None = None
    # Discovered by the release layer: what `current` points at and what its marker says.
    release_id: str | None = None
    release_dir: str | None = None
    marker: dict[str, Any] | None = None
    # Set by the dependencies layer once the release's venv interpreter is known to run.
    venv_python: str | None = None
    manifest_error: str | None = None

    @property
    def layout(self) -> RemoteLayout:
        return RemoteLayout(self.target.path)

    def timeout_of(self, layer_id: str) -> float:
        return self.audit.timeout_of(layer_id)

    @property
    def live_sha(self) -> str | None:
        sha = (self.marker or {}).get("sha")
        return str(sha) if sha else None

    @property
    def live_python(self) -> str | None:
        """The live release's interpreter (its venv), whatever the release layer concluded."""
        if self.venv_python:
            return self.venv_python
        if self.release_dir:
            return f"{self.release_dir}/{VENV_LINK}/bin/python"
        return None

    def ssh(self) -> SSHSession:
        if self.session is None:
            raise RuntimeError("layer needs a session but the ssh layer did not open one")
        return self.session

    def get_manifest(self) -> Manifest | None:
        """The manifest of the audited sha: given by the caller or built from the local repo."""
        if self.manifest is not None or self.manifest_error is not None:
            return self.manifest
        sha = self.expected_sha or self.live_sha
        if self.repo_path is None or sha is None:
            self.manifest_error = "no local repository to read the git tree from (--repo)"
            return None
        try:
            self.manifest = build_manifest(self.repo_path, sha)
        except GatebotError as exc:
            self.manifest_error = (
                f"cannot read the tree of {sha[:12]} from {self.repo_path}: {exc.message} "
                "(fetch the full history, e.g. actions/checkout with fetch-depth: 0)"
            )
        return self.manifest


def parse_json_line(text: str) -> dict[str, Any] | None:
    """The last line of `text` that is a JSON object (remote scripts print exactly one)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
