"""The GraphQL endpoint of the loopback GitHub server, checked against GitHub's own schema.

GitHub resolves review threads and minimises comments only through GraphQL. Every document
sent here is parsed and validated with graphql-core against GitHub's published schema (the
pinned `@octokit/graphql-schema` package, tests/fakes/npm_pack.py), its variables included;
a document that does not validate is answered as GitHub does (HTTP 200 with `errors`) and
recorded as a violation, which fails the test. Valid documents are executed over the fake's
state with graphql-core's default resolvers: the fields gatebot reads (a pull request's review
threads and their first comments) and the mutations it sends (`resolveReviewThread`,
`minimizeComment`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLSchema, build_client_schema, graphql_sync

from tests.fakes.npm_pack import GRAPHQL_SCHEMA, member

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub


@lru_cache(maxsize=1)
def github_schema() -> GraphQLSchema:
    data = json.loads(member(GRAPHQL_SCHEMA, "schema.json").read_text(encoding="utf-8"))
    # GitHub's schema breaks one rule of the spec about deprecation on interface fields that
    # graphql-core checks at schema build; documents are still validated in full against it.
    return build_client_schema(data.get("data", data), assume_valid=True)


def _connection(nodes: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    start = int(after) if after else 0
    end = len(nodes) if first is None else min(len(nodes), start + first)
    return {
        "nodes": nodes[start:end],
        "totalCount": len(nodes),
        "pageInfo": {"hasNextPage": end < len(nodes), "endCursor": str(end)},
    }


class GraphQL:
    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.documents: list[dict[str, Any]] = []

    # -- state as GraphQL objects -----------------------------------------------------------

    def _comment(self, c: dict[str, Any]) -> dict[str, Any]:
        login = c["user"]
        return {
            "__typename": "PullRequestReviewComment",
            "id": f"PRRC_{c['id']}",
            "databaseId": c["id"] if c["id"] < 2**31 else None,  # GitHub: Int, 32-bit
            "fullDatabaseId": str(c["id"]),
            "body": c["body"],
            "path": c["path"],
            "line": c["line"],
            "isMinimized": c["minimized"],
            "minimizedReason": "outdated" if c["minimized"] else None,
            "author": {"__typename": "Bot" if login.endswith("[bot]") else "User", "login": login},
        }

    def _thread(self, top: dict[str, Any]) -> dict[str, Any]:
        replies = [top] + [
            c for c in self.fake.review_comments.values() if c["in_reply_to_id"] == top["id"]
        ]
        nodes = [self._comment(c) for c in replies]
        return {
            "__typename": "PullRequestReviewThread",
            "id": f"PRRT_{top['id']}",
            "isResolved": top["resolved"],
            "isOutdated": top["line"] is None,
            "path": top["path"],
            "line": top["line"],
            "comments": lambda info, first=None, after=None, **_: _connection(nodes, first, after),
        }

    def _pull(self, number: int) -> dict[str, Any] | None:
        if number not in self.fake.pulls:
            return None
        threads = [self._thread(c) for c in self.fake.threads(number)]
        return {
            "__typename": "PullRequest",
            "id": f"PR_{number}",
            "number": number,
            "reviewThreads": lambda info, first=None, after=None, **_: _connection(
                threads, first, after
            ),
        }

    def _root(self) -> dict[str, Any]:
        return {
            "repository": lambda info, owner, name, **_: {
                "__typename": "Repository",
                "nameWithOwner": f"{owner}/{name}",
                "pullRequest": lambda info, number: self._pull(number),
            }
        }

    def _top(self, node_id: str, prefix: str) -> dict[str, Any]:
        if not node_id.startswith(prefix):
            raise GraphQLError(f"Could not resolve to a node with the global id of '{node_id}'")
        found = self.fake.review_comments.get(int(node_id.removeprefix(prefix)))
        if found is None:
            raise GraphQLError(f"Could not resolve to a node with the global id of '{node_id}'")
        return found

    def _mutations(self) -> dict[str, Any]:
        def resolve(info: Any, input: dict[str, Any]) -> dict[str, Any]:
            top = self._top(input["threadId"], "PRRT_")
            top["resolved"] = True
            return {"thread": self._thread(top), "clientMutationId": None}

        def minimize(info: Any, input: dict[str, Any]) -> dict[str, Any]:
            c = self._top(input["subjectId"], "PRRC_")
            c["minimized"] = True
            c["minimized_reason"] = input["classifier"]
            return {"minimizedComment": self._comment(c), "clientMutationId": None}

        return {"resolveReviewThread": resolve, "minimizeComment": minimize}

    # -- the endpoint -------------------------------------------------------------------------

    def execute(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            self.fake.violations.append("POST graphql: the body must be {query, variables}")
            return 400, {"message": "Problems parsing JSON"}
        self.documents.append(body)
        query, variables = body["query"], body.get("variables") or {}
        mutation = query.lstrip().startswith("mutation")
        with self.fake._lock:
            result = graphql_sync(
                github_schema(),
                query,
                root_value=self._mutations() if mutation else self._root(),
                variable_values=variables,
            )
        errors = [e.formatted for e in result.errors or []]
        invalid = [e for e in errors if "path" not in e]  # validation, not resolution
        if invalid:
            messages = "; ".join(e["message"] for e in invalid)
            self.fake.violations.append(f"POST graphql: {messages}")
        out: dict[str, Any] = {"data": result.data}
        if errors:
            out["errors"] = errors
        return 200, out
