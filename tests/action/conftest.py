"""Fixtures for the Action under act: a published copy of the Action, a harness per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.action.harness import ActHarness, publish_action
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub


@pytest.fixture(scope="session")
def published_action(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publish_action(tmp_path_factory.mktemp("release") / "gatebot")


@pytest.fixture
def act(
    tmp_path: Path,
    published_action: Path,
    github_server: FakeGitHub,
    gemini_server: FakeGemini,
) -> Iterator[ActHarness]:
    """act wired to the loopback GitHub and Gemini, with the fake token and key as secrets."""
    harness = ActHarness(tmp_path / "act", published_action)
    harness.tmp.mkdir()
    harness.env.update(
        {"GITHUB_API_URL": github_server.url, "GOOGLE_GEMINI_BASE_URL": gemini_server.url}
    )
    harness.secrets.update(
        {"GITHUB_TOKEN": github_server.token, "GEMINI_API_KEY": gemini_server.api_key}
    )
    yield harness
