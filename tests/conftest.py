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


#: Skip reasons start with this, so the run's last line can say what was not run.
NEEDS = "needs "


def require(what: str, install: str) -> None:
    """A test that needs `what` (a system tool the decision tests do without): fails under
    CI=true, where nothing may skip; elsewhere skips, and the run ends with one line saying
    what was not run and how to install it (see pytest_unconfigure below)."""
    if in_ci():
        pytest.fail(f"{what} is missing ({install})")
    pytest.skip(f"{NEEDS}{what} (install: {install})")


_not_run: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(NEEDS):
            _not_run[reason] = _not_run.get(reason, 0) + 1


def pytest_unconfigure(config: pytest.Config) -> None:
    """After the totals: one line naming what was not run here and what installs it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not _not_run or reporter is None:
        return
    parts = [
        f"{n} test{'s' if n > 1 else ''} that need{'' if n > 1 else 's'} {reason[len(NEEDS) :]}"
        for reason, n in sorted(_not_run.items())
    ]
    reporter.write_line(f"not run here: {'; '.join(parts)}", yellow=True, bold=True)


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
