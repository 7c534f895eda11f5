from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.github.event import load_pull_request, parse_pull_request

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"


def _payload(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def test_opened_same_repo() -> None:
    pr = load_pull_request("pull_request", EVENTS / "pull_request_opened.json")
    assert pr.number == 42
    assert pr.base_sha == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert pr.head_sha == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert pr.base_ref == "main" and pr.head_ref == "feature/throttle"
    assert pr.action == "opened"
    assert pr.fork is False


def test_synchronize_takes_the_new_head() -> None:
    pr = load_pull_request("pull_request", EVENTS / "pull_request_synchronize.json")
    assert pr.action == "synchronize"
    assert pr.head_sha == _payload("pull_request_synchronize")["after"]


def test_fork_is_detected_for_pull_request_target() -> None:
    pr = load_pull_request("pull_request_target", EVENTS / "pull_request_fork.json")
    assert pr.fork is True
    assert pr.head_repo == "mallory/inf-trader"
    assert pr.base_repo == "octo-org/inf-trader"


def test_branch_pr_inside_a_forked_repository_is_not_a_fork_pr() -> None:
    payload = _payload("pull_request_opened")
    # The base repository is itself a fork of something: both sides carry fork=true.
    payload["pull_request"]["base"]["repo"]["fork"] = True
    payload["pull_request"]["head"]["repo"]["fork"] = True
    assert parse_pull_request("pull_request", payload).fork is False


def test_deleted_fork_counts_as_fork() -> None:
    payload = _payload("pull_request_fork")
    payload["pull_request"]["head"]["repo"] = None
    pr = parse_pull_request("pull_request", payload)
    assert pr.fork is True and pr.head_repo is None


def test_missing_head_sha_is_named() -> None:
    payload = _payload("pull_request_opened")
    del payload["pull_request"]["head"]["sha"]
    with pytest.raises(UsageError, match=r"pull_request\.head\.sha"):
        parse_pull_request("pull_request", payload)


def test_missing_pull_request_object_is_named() -> None:
    with pytest.raises(UsageError, match=r"`pull_request` is missing"):
        parse_pull_request("pull_request", {"action": "opened"})


def test_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "event.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_pull_request("pull_request", bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_pull_request("pull_request", tmp_path / "absent.json")


def test_push_event_is_refused() -> None:
    with pytest.raises(UsageError, match="not a pull request event"):
        parse_pull_request("push", _payload("pull_request_opened"))
