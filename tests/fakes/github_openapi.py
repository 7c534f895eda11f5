"""Checks a request against GitHub's official REST OpenAPI description (openapi-core).

The description (`@octokit/openapi`, see tests/fakes/npm_pack.py) is 13 MB; the validator is
built from the part the loopback server speaks: the operations it serves and the components
they reference. A request is checked for its path, its method, its path and query parameters
and its JSON body, exactly as the description states them. A request to an operation the
description does not have is reported as such; one the description has but the fake does not
serve says so too (the fake then needs that operation, not our code a change).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import (
    OperationNotFound,
    PathNotFound,
    ServerNotFound,
)
from openapi_core.validation.request.exceptions import RequestValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.npm_pack import REST_DESCRIPTION, member

# Descriptions in the pinned package: api.github.com, and the oldest GHES release it carries.
DOTCOM = "api.github.com"
GHES_OLDEST = "ghes-3.17"
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")

Operation = tuple[str, str]  # (lower-case method, path template as in the description)


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def components_for(description: Mapping[str, Any], node: Any) -> dict[str, dict[str, Any]]:
    """The components of `description` that `node` reaches through `$ref`s, transitively."""
    components: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    _refs(node, todo)
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        found = description["components"][kind][name]
        components.setdefault(kind, {})[name] = found
        more: set[str] = set()
        _refs(found, more)
        todo |= more - seen
    return components


def prune(description: Mapping[str, Any], operations: Iterable[Operation]) -> dict[str, Any]:
    """The description restricted to `operations` and every component they reach."""
    paths: dict[str, dict[str, Any]] = {}
    for method, template in operations:
        item = description["paths"].get(template)
        if item is None or method not in item:
            raise KeyError(f"{method.upper()} {template} is not in GitHub's REST description")
        kept = paths.setdefault(template, {k: v for k, v in item.items() if k not in _METHODS})
        kept[method] = item[method]
    return {
        "openapi": description["openapi"],
        "info": description["info"],
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": components_for(description, paths),
    }


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


@lru_cache(maxsize=4)
def _description(flavour: str) -> dict[str, Any]:
    path = member(REST_DESCRIPTION, f"generated/{flavour}.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def documented(flavour: str, method: str, path: str) -> bool:
    """Whether the full description has `method path` (a concrete path, not a template)."""
    for template, item in _description(flavour)["paths"].items():
        if method in item and _template_regex(template).fullmatch(path):
            return True
    return False


@dataclass
class _Request:
    """openapi-core's request protocol, filled from what the loopback server received."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


def _problem(exc: Exception) -> str:
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if errors:
        details = []
        for err in list(errors)[:5]:
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            details.append(f"{where}: {err.message[:300]}")
        return f"{exc}".split(":", 1)[0] + ": " + "; ".join(details)
    text = str(exc)
    if cause is not None and str(cause) not in text:
        text = f"{text}: {cause}"
    return text[:800]


class RestDescription:
    """Validates requests for a fixed set of operations of one flavour of the description."""

    def __init__(self, operations: Iterable[Operation], flavour: str = DOTCOM) -> None:
        self.flavour = flavour
        self.operations = tuple(sorted(set(operations)))
        self.version = str(_description(flavour)["info"]["version"])
        self._api = OpenAPI.from_dict(prune(_description(flavour), self.operations))

    def problem(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> tuple[int, str] | None:
        """None when the request matches the description, else GitHub's status and why."""
        request = _Request(
            host_url="http://gatebot.invalid",
            path=path,
            method=method.lower(),
            body=body or None,
            content_type=headers.get("Content-Type", "") if body else "",
            parameters=RequestParameters(
                query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
                header=Headers(list(headers.items())),
                cookie=ImmutableMultiDict(),
                path={},
            ),
        )
        try:
            self._api.validate_request(request)
        except (PathNotFound, OperationNotFound, ServerNotFound):
            where = f"{method.upper()} {path}"
            if documented(self.flavour, method.lower(), path):
                return 404, f"{where} is documented but the GitHub fake does not serve it yet"
            return 404, f"{where} is not an operation of GitHub's REST API ({self.flavour})"
        except RequestValidationError as exc:
            return 422, f"{method.upper()} {path}: {_problem(exc)}"
        return None


@lru_cache(maxsize=8)
def rest_description(operations: tuple[Operation, ...], flavour: str = DOTCOM) -> RestDescription:
    return RestDescription(operations, flavour)
