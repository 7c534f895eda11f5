"""The scheduled metrics workflow restores the cache the review Action saves, and runs the check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.github.cachedir import DEFAULT_ACTION_CACHE_DIR
from bot.github.cachekey import PREFIX
from bot.metrics.history import HISTORY_FILE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "metrics.yml"


def _load() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def test_triggers_and_least_privilege() -> None:
    data = _load()
    triggers = data[True]  # YAML 1.1 reads the bare key `on` as a boolean
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert re.fullmatch(r"\d+ \d+ \* \* \*", triggers["schedule"][0]["cron"])  # daily
    assert data["permissions"] == {}
    assert data["jobs"]["check"]["permissions"] == {"contents": "read"}


def test_every_action_is_pinned_and_credentials_are_not_persisted() -> None:
    steps = _load()["jobs"]["check"]["steps"]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w-]+/[\w/-]+@[0-9a-f]{40}", u) for u in uses)
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_restores_the_review_cache_and_runs_the_check() -> None:
    steps = _load()["jobs"]["check"]["steps"]
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore@"))
    # the review Action saves under keys starting with PREFIX; the path must match its default
    assert restore["with"]["restore-keys"].startswith(PREFIX + "-")
    assert restore["with"]["path"] == DEFAULT_ACTION_CACHE_DIR
    runs = [s for s in steps if "run" in s and "gatebot metrics" in s["run"]]
    assert any("--check" in s["run"] for s in runs)
    assert any("--format markdown" in s["run"] and "GITHUB_STEP_SUMMARY" in s["run"] for s in runs)
    for step in runs:
        assert step["env"]["GATEBOT_CACHE_DIR"] == restore["with"]["path"]
    assert HISTORY_FILE == "history.jsonl"
