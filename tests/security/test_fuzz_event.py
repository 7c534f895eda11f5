"""Fuzz the event payload reader: a PullRequestEvent or a UsageError naming what was wrong.

GITHUB_EVENT_PATH is written by the runner, but its fields (branch names, titles, fork
metadata) are chosen by whoever opened the PR, and a broken or hand-made payload must not
crash the gate with a KeyError.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import UsageError
from bot.github.event import PullRequestEvent, load_pull_request, parse_pull_request
from tests.security.strategies import fuzz_settings, yaml_values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
BASES = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("pull_request_*.json"))}

FUZZ = fuzz_settings(150)

# JSON-representable values only: a payload comes from json.loads.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "0" * 40, "../../x", "--upload-pack=x", "refs/pull/1/head"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=8,
)

# The fields the reader looks at, plus neighbours; mutations aim here most of the time.
HOT_PATHS = [
    ("pull_request",),
    ("pull_request", "number"),
    ("pull_request", "base"),
    ("pull_request", "base", "sha"),
    ("pull_request", "base", "ref"),
    ("pull_request", "base", "repo"),
    ("pull_request", "base", "repo", "full_name"),
    ("pull_request", "base", "repo", "id"),
    ("pull_request", "head"),
    ("pull_request", "head", "sha"),
    ("pull_request", "head", "ref"),
    ("pull_request", "head", "repo"),
    ("pull_request", "head", "repo", "full_name"),
    ("pull_request", "head", "repo", "id"),
    ("pull_request", "head", "repo", "fork"),
    ("action",),
]


def _mutate(payload: dict[str, Any], path: tuple[str, ...], op: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    node: Any = out
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return out
        node = node[key]
    if not isinstance(node, dict):
        return out
    if op == "delete":
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


mutated_payloads = st.builds(
    lambda base, muts: _apply(base, muts),
    st.sampled_from(sorted(BASES)),
    st.lists(
        st.tuples(st.sampled_from(HOT_PATHS), st.sampled_from(["delete", "set"]), json_values),
        min_size=1,
        max_size=4,
    ),
)


def _apply(base: str, muts: list[tuple[tuple[str, ...], str, Any]]) -> dict[str, Any]:
    payload = BASES[base]
    for path, op, value in muts:
        payload = _mutate(payload, path, op, value)
    return payload


def check(event_name: str, payload: Any) -> PullRequestEvent | None:
    try:
        event = parse_pull_request(event_name, payload)
    except UsageError as exc:
        assert str(exc).strip(), "empty error message"
        return None
    assert isinstance(event.number, int) and not isinstance(event.number, bool)
    assert event.number >= 1
    for field in (event.base_sha, event.head_sha, event.base_ref, event.head_ref, event.base_repo):
        assert isinstance(field, str) and field
    # A head repository that differs from the base is always a fork (no secrets, read-only).
    if event.head_repo is None or event.head_repo.lower() != event.base_repo.lower():
        assert event.fork
    return event


def test_the_fixtures_parse() -> None:
    assert BASES, f"no event fixtures in {FIXTURES}"
    for name, payload in BASES.items():
        assert check("pull_request", payload) is not None, name


@FUZZ
@given(mutated_payloads, st.sampled_from(["pull_request", "pull_request_target"]))
def test_mutated_payloads_parse_or_raise_usage_error(payload: Any, event_name: str) -> None:
    check(event_name, payload)


@FUZZ
@given(yaml_values | json_values, st.sampled_from(["pull_request", "push", ""]))
def test_arbitrary_payloads_parse_or_raise_usage_error(payload: Any, event_name: str) -> None:
    check(event_name, payload)


@FUZZ
@given(
    st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_arbitrary_event_files_load_or_raise_usage_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("event") / "event.json"
    path.write_bytes(data)
    try:
        load_pull_request("pull_request", path)
    except UsageError as exc:
        assert "GITHUB_EVENT_PATH" in str(exc)


def test_missing_field_is_named() -> None:
    payload = _mutate(BASES["pull_request_opened"], ("pull_request", "head", "sha"), "delete", None)
    with pytest.raises(UsageError, match=r"pull_request\.head\.sha"):
        parse_pull_request("pull_request", payload)


def test_same_named_head_with_different_repo_id_is_a_fork() -> None:
    # A fork renamed to the base's full_name must not pass for the base repository.
    payload = copy.deepcopy(BASES["pull_request_opened"])
    head_repo = payload["pull_request"]["head"]["repo"]
    head_repo["fork"] = True
    head_repo["id"] = payload["pull_request"]["base"]["repo"]["id"] + 1
    event = check("pull_request", payload)
    assert event is not None and event.fork


@pytest.mark.parametrize(
    "data", [b'{"pull_request": "\xff\xfe"}', b"[" * 100_000], ids=["not-utf8", "deep-nesting"]
)
def test_unreadable_event_file_is_a_usage_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="GITHUB_EVENT_PATH"):
        load_pull_request("pull_request", path)
