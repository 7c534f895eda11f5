"""Shared pytest configuration. Wire-level fakes live in tests/fakes/ and register as plugins."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fakes.sshd",
    "tests.fakes.gtw",
    "tests.fakes.github",
    "tests.fakes.gemini",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _no_real_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach real GitHub or Google: drop any ambient credentials/endpoints.
    for var in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GITHUB_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_ACTIONS",
        "GITHUB_EVENT_PATH",
        "GITHUB_EVENT_NAME",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "GATEBOT_CACHE_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
