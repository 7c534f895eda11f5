"""Webhook payloads as GitHub sends them, checked against GitHub's webhook description.

The fixtures in tests/fixtures/events/octokit/ are real payloads (see the README there); tests
derive variants from them (another comment body, author, PR number, SHAs) and every payload a
test hands to gatebot is first validated, with openapi-core, against the official webhook
description (`@octokit/openapi-webhooks`, OpenAPI 3.1 `webhooks`), delivered with the headers
GitHub documents. A payload that is not what GitHub sends fails the test before gatebot sees it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import RequestValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.github_openapi import components_for
from tests.fakes.npm_pack import WEBHOOK_DESCRIPTION, member

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "octokit"
# (event, action) -> the description's webhook name
WEBHOOKS = {
    ("issue_comment", "created"): "issue-comment-created",
    ("pull_request", "synchronize"): "pull-request-synchronize",
    ("pull_request", "opened"): "pull-request-opened",
    ("merge_group", "checks_requested"): "merge-group-checks-requested",
    ("pull_request", "edited"): "pull-request-edited",
    ("merge_group", "destroyed"): "merge-group-destroyed",
}


@lru_cache(maxsize=1)
def _api() -> OpenAPI:
    full = json.loads(member(WEBHOOK_DESCRIPTION, "generated/api.github.com.json").read_text())
    hooks = {name: full["webhooks"][name] for name in WEBHOOKS.values()}
    spec = {
        "openapi": full["openapi"],
        "info": full["info"],
        "paths": {},
        "webhooks": hooks,
        "components": components_for(full, hooks),
    }
    return OpenAPI.from_dict(spec)


@dataclass
class _Delivery:
    name: str
    method: str
    body: bytes
    content_type: str
    parameters: RequestParameters


def validate(event: str, payload: dict[str, Any]) -> None:
    """Raise AssertionError unless `payload` is a valid `event` delivery per GitHub."""
    action = payload.get("action")
    name = WEBHOOKS.get((event, str(action)))
    assert name is not None, f"no webhook description wired for {event}.{action}"
    headers = Headers(
        {
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-Github-Hook-Id": "292430182",
            "X-Github-Event": event,
            "X-Github-Hook-Installation-Target-Id": "79929171",
            "X-Github-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": "sha256=" + "d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06"
            "abdf1859230aa23c",
            "Content-Type": "application/json",
        }
    )
    delivery = _Delivery(
        name,
        "post",
        json.dumps(payload).encode(),
        "application/json",
        RequestParameters(
            query=ImmutableMultiDict(), header=headers, cookie=ImmutableMultiDict(), path={}
        ),
    )
    try:
        _api().validate_request(delivery)
    except RequestValidationError as exc:
        errors = getattr(exc.__cause__, "schema_errors", None) or []
        detail = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in list(errors)[:5]
        )
        raise AssertionError(
            f"not a {event}.{action} payload GitHub sends: {detail or exc}"
        ) from None


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _repository(payload: dict[str, Any], full_name: str) -> None:
    owner, name = full_name.split("/")
    repo = payload["repository"]
    repo["full_name"], repo["name"] = full_name, name
    repo["owner"]["login"] = owner


def issue_comment(
    *,
    repo: str,
    number: int,
    body: str,
    login: str,
    user_type: str = "User",
    comment_id: int = 2_000_000_001,
    author: str = "octocat",
    created_at: str | None = None,
) -> dict[str, Any]:
    """`issue_comment.created` on pull request #number, validated (`created_at`: the
    comment's time as GitHub writes it; the real example's time when None)."""
    p = copy.deepcopy(fixture("issue_comment.created"))
    _repository(p, repo)
    p["issue"]["number"] = number
    p["issue"]["user"]["login"] = author
    pr_url = f"https://api.github.com/repos/{repo}/pulls/{number}"
    p["issue"]["pull_request"].update(url=pr_url)
    p["comment"].update(id=comment_id, body=body)
    if created_at is not None:
        p["comment"].update(created_at=created_at, updated_at=created_at)
    p["comment"]["user"].update(login=login, type=user_type)
    p["sender"].update(login=login, type=user_type)
    validate("issue_comment", p)
    return p


def synchronize(
    *, repo: str, number: int, base_sha: str, head_sha: str, before: str
) -> dict[str, Any]:
    """`pull_request.synchronize` moving #number from `before` to `head_sha`, validated."""
    p = copy.deepcopy(fixture("pull_request.synchronize"))
    _repository(p, repo)
    p["number"] = p["pull_request"]["number"] = number
    p["before"], p["after"] = before, head_sha
    p["pull_request"]["head"]["sha"], p["pull_request"]["base"]["sha"] = head_sha, base_sha
    for side in ("head", "base"):
        _repo = p["pull_request"][side]["repo"]
        _repo["full_name"], _repo["name"] = repo, repo.split("/")[1]
        _repo["id"] = p["repository"]["id"]
    validate("pull_request", p)
    return p


def merge_group(*, repo: str, base_sha: str, head_sha: str, number: int = 104) -> dict[str, Any]:
    """`merge_group.checks_requested` for a queue entry of PR #number on main, validated."""
    p = copy.deepcopy(fixture("merge_group.checks_requested"))
    _repository(p, repo)
    p["merge_group"].update(
        head_sha=head_sha,
        base_sha=base_sha,
        head_ref=f"refs/heads/gh-readonly-queue/main/pr-{number}-{base_sha}",
    )
    validate("merge_group", p)
    return p


def edited(
    *, repo: str, number: int, base_sha: str, head_sha: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """`pull_request.edited` of #number (the synchronize example's pull request, with its
    `before`/`after` gone): `changes` as GitHub sends it, e.g. {"title": {"from": "old"}} or
    {"base": {"ref": {"from": "develop"}, "sha": {"from": SHA}}} for a new base; validated."""
    p = synchronize(repo=repo, number=number, base_sha=base_sha, head_sha=head_sha, before=base_sha)
    del p["before"], p["after"]
    p["action"], p["changes"] = "edited", copy.deepcopy(changes)
    validate("pull_request", p)
    return p


def merge_group_destroyed(
    *, repo: str, base_sha: str, head_sha: str, reason: str = "dequeued"
) -> dict[str, Any]:
    """`merge_group.destroyed` (merged, dequeued or invalidated), validated."""
    p = merge_group(repo=repo, base_sha=base_sha, head_sha=head_sha)
    p["action"], p["reason"] = "destroyed", reason
    validate("merge_group", p)
    return p
