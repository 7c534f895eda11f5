"""Fixtures for the monitoring tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def gatebot(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Done]:
    """The real CLI entry point (bot.cli.main.main), in-process: exit code, stdout, stderr."""

    # Imported here: only the CLI tests need the whole command tree.
    from bot.cli.main import main

    def run(*args: str, env: dict[str, str] | None = None) -> Done:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["metrics", *args])
        out, err = capsys.readouterr()
        for key in env or {}:
            monkeypatch.delenv(key)
        return Done(int(exited.value.code or 0), out, err)

    return run
