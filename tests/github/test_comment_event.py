"""The issue_comment payload and the command line: untrusted input, typed or refused."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import UsageError
from bot.github.comment_event import CommentEvent, parse_command, parse_comment
from bot.github.event import MergeGroupEvent, parse_merge_group
from tests.fakes import github_webhooks

REAL = github_webhooks.issue_comment(
    repo="octo-org/inf-trader", number=7, body="/gatebot help", login="maintainer"
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_the_real_payload_reads_as_a_pull_request_comment() -> None:
    event = parse_comment(REAL)
    assert (event.repository, event.number, event.login) == ("octo-org/inf-trader", 7, "maintainer")
    assert event.is_pull_request and not event.is_bot and event.action == "created"
    on_issue = copy.deepcopy(REAL)
    del on_issue["issue"]["pull_request"]
    assert not parse_comment(on_issue).is_pull_request


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2019-05-15T15:20:21Z", datetime(2019, 5, 15, 15, 20, 21, tzinfo=timezone.utc)),
        ("2019-05-15T17:20:21+02:00", datetime(2019, 5, 15, 15, 20, 21, tzinfo=timezone.utc)),
        ("2019-05-15T15:20:21", None),  # no zone: not a time to compare with GitHub's
        ("yesterday", None),
        (1557933621, None),
        (None, None),
        ("9" * 100, None),
    ],
)
def test_the_comments_time_is_read_in_utc_or_not_at_all(
    stamp: Any, expected: datetime | None
) -> None:
    # `/gatebot approve` without a SHA compares it with the check run's completion.
    payload = copy.deepcopy(REAL)
    payload["comment"]["created_at"] = stamp
    assert parse_comment(payload).created_at == expected


@pytest.mark.parametrize(
    ("body", "verb", "word"),
    [
        ("/gatebot review", "review", "review"),
        ("\n\n  /GATEBOT   Approve  now please\nmore", "approve", "approve"),
        ("/gatebot", None, ""),
        ("/gatebot deploy", None, "deploy"),
        ("/gatebotreview", None, None),
        ("please /gatebot review", None, None),
        ("> /gatebot review", None, None),
        ("```\n/gatebot approve\n```", None, None),
        ("    /gatebot approve", None, None),  # an indented code block
        ("\t/gatebot approve", None, None),
        ("\n   /gatebot approve", "approve", "approve"),  # three spaces: still a paragraph
        ("`/gatebot approve`", None, None),
        ("", None, None),
    ],
)
def test_only_the_first_line_is_a_command(body: str, verb: str | None, word: str | None) -> None:
    command = parse_command(body)
    if word is None:
        assert command is None
    else:
        assert command is not None and (command.verb, command.word) == (verb, word)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("comment", "user", "login"), "a b"),
        (("comment", "user", "login"), "-lead"),
        (("comment", "user", "login"), "x" * 40),
        (("comment", "id"), True),
        (("comment", "id"), -3),
        (("issue", "number"), "7"),
        (("repository", "full_name"), "no-slash"),
        (("comment", "body"), 12),
        (("comment",), []),
    ],
)
def test_a_mistyped_field_is_a_usage_error_naming_it(path: tuple[str, ...], value: Any) -> None:
    payload = copy.deepcopy(REAL)
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(UsageError, match=path[0]):
        parse_comment(payload)


def _outcome(parse: Any, data: Any) -> Any:
    """What `parse` made of `data`: its result, or the UsageError it refused it with."""
    try:
        return parse(data)
    except UsageError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(payload=json_values, body=st.text(max_size=300))
def test_any_payload_or_body_is_parsed_or_refused_never_a_crash(payload: Any, body: str) -> None:
    for data in (payload, {**REAL, "comment": payload}, {**REAL, "issue": payload}):
        assert isinstance(_outcome(parse_comment, data), CommentEvent | UsageError)
    group = payload if isinstance(payload, dict) else {"merge_group": payload}
    assert isinstance(_outcome(parse_merge_group, group), MergeGroupEvent | UsageError)
    command = parse_command(body)
    assert command is None or len(command.word) <= 40


def test_a_merge_group_head_must_be_a_commit_sha() -> None:
    real = github_webhooks.merge_group(
        repo="octo-org/inf-trader", base_sha="a" * 40, head_sha="b" * 40
    )
    assert parse_merge_group(real).head_sha == "b" * 40
    real["merge_group"]["head_sha"] = "HEAD~1; rm -rf /"
    with pytest.raises(UsageError, match="not a commit SHA"):
        parse_merge_group(real)
