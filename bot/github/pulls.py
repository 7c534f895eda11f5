"""The pull-request outlet: the REST and GraphQL calls behind PR comments and commands.

One typed interface (`PullRequestOutlet`) with one implementation over PyGithub's requester
(`GitHubPulls`), so the retries, the rate-limit handling and GITHUB_API_URL (GitHub Enterprise
Server included: PyGithub derives `/api/graphql` from `/api/v3`) are the check run's own.
Every call names a documented endpoint (docs/action.md lists them with the API versions they
need); answers are type-checked before use.

REST: GET pulls/{n}, GET pulls/{n}/comments, POST pulls/{n}/reviews, PATCH pulls/comments/{id},
POST issues/{n}/comments, POST issues/comments/{id}/reactions,
GET collaborators/{login}/permission. GraphQL: a pull request's review threads, and the
`resolveReviewThread` mutation (GitHub resolves threads only through GraphQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from github import GithubException
from github.Requester import Requester

REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})
_PAGE = 100
_MAX_PAGES = 30  # 3,000 review comments: past that, a PR has bigger problems than our threads


class OutletError(Exception):
    """The API answered something we cannot use (not a transport or HTTP error)."""


@dataclass(frozen=True)
class PullInfo:
    number: int
    state: str  # open | closed
    head_sha: str
    base_sha: str
    base_ref: str
    head_ref: str
    base_repo: str
    head_repo: str | None  # None when the fork was deleted
    author: str

    @property
    def fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.base_repo.lower()


@dataclass(frozen=True)
class PostedComment:
    """A review comment already on the PR."""

    id: int
    path: str
    line: int | None  # None once outdated
    body: str
    author: str
    author_type: str
    in_reply_to: int | None


@dataclass(frozen=True)
class NewComment:
    path: str
    line: int
    start_line: int | None
    body: str

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "line": self.line,
            "side": "RIGHT",
            "body": self.body,
        }
        if self.start_line is not None and self.start_line < self.line:
            out.update(start_line=self.start_line, start_side="RIGHT")
        return out


@dataclass(frozen=True)
class Thread:
    id: str  # GraphQL node id
    resolved: bool
    first_comment: int | None  # REST id (databaseId) of the comment that opened it


class PullRequestOutlet(Protocol):
    def pull(self, number: int) -> PullInfo: ...
    def permission(self, login: str) -> str: ...
    def react(self, comment_id: int, content: str) -> None: ...
    def reply(self, number: int, body: str) -> str: ...
    def review_comments(self, number: int) -> list[PostedComment]: ...
    def create_review(
        self, number: int, commit_id: str, body: str, comments: Sequence[NewComment]
    ) -> str: ...
    def edit_review_comment(self, comment_id: int, body: str) -> None: ...
    def threads(self, number: int) -> list[Thread]: ...
    def resolve_thread(self, thread_id: str) -> None: ...


def _need(data: Any, key: str, kind: type, what: str) -> Any:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise OutletError(f"{what}: `{key}` missing or not a {kind.__name__}")
    return value


_THREADS = """
query($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { id isResolved comments(first: 1) { nodes { fullDatabaseId } } }
      }
    }
  }
}"""
_RESOLVE = """
mutation($thread: ID!) {
  resolveReviewThread(input: {threadId: $thread}) { thread { id isResolved } }
}"""


class GitHubPulls:
    def __init__(self, requester: Requester, repository: str) -> None:
        self._r = requester
        self.repository = repository
        self._base = "/repos/" + "/".join(quote(p, safe="") for p in repository.split("/"))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        _, data = self._r.requestJsonAndCheck(method, self._base + path, input=body)
        return data

    def pull(self, number: int) -> PullInfo:
        data = self._call("GET", f"/pulls/{number}")
        what = f"pull request #{number}"
        head, base = _need(data, "head", dict, what), _need(data, "base", dict, what)
        head_repo = head.get("repo")
        return PullInfo(
            number=_need(data, "number", int, what),
            state=_need(data, "state", str, what),
            head_sha=_need(head, "sha", str, what + " head"),
            base_sha=_need(base, "sha", str, what + " base"),
            base_ref=_need(base, "ref", str, what + " base"),
            head_ref=_need(head, "ref", str, what + " head"),
            base_repo=_need(_need(base, "repo", dict, what), "full_name", str, what),
            head_repo=head_repo.get("full_name") if isinstance(head_repo, dict) else None,
            author=_need(_need(data, "user", dict, what), "login", str, what),
        )

    def permission(self, login: str) -> str:
        try:
            data = self._call("GET", f"/collaborators/{quote(login, safe='')}/permission")
        except GithubException as exc:
            if exc.status == 404:  # not a user, or not visible to this token
                return "none"
            raise
        return str(_need(data, "permission", str, f"permission of {login}"))

    def react(self, comment_id: int, content: str) -> None:
        assert content in REACTIONS, content
        self._call("POST", f"/issues/comments/{comment_id}/reactions", {"content": content})

    def reply(self, number: int, body: str) -> str:
        data = self._call("POST", f"/issues/{number}/comments", {"body": body})
        return str(_need(data, "html_url", str, "the reply"))

    def review_comments(self, number: int) -> list[PostedComment]:
        out: list[PostedComment] = []
        for page in range(1, _MAX_PAGES + 1):
            data = self._call("GET", f"/pulls/{number}/comments?per_page={_PAGE}&page={page}")
            if not isinstance(data, list):
                raise OutletError(f"review comments of #{number}: not a list")
            for c in data:
                user = c.get("user") if isinstance(c, dict) else None
                line = c.get("line") if isinstance(c, dict) else None
                reply_to = c.get("in_reply_to_id") if isinstance(c, dict) else None
                out.append(
                    PostedComment(
                        id=_need(c, "id", int, "a review comment"),
                        path=_need(c, "path", str, "a review comment"),
                        line=line if isinstance(line, int) else None,
                        body=c.get("body") if isinstance(c.get("body"), str) else "",
                        author=str(user.get("login", "")) if isinstance(user, dict) else "",
                        author_type=str(user.get("type", "")) if isinstance(user, dict) else "",
                        in_reply_to=reply_to if isinstance(reply_to, int) else None,
                    )
                )
            if len(data) < _PAGE:
                break
        return out

    def create_review(
        self, number: int, commit_id: str, body: str, comments: Sequence[NewComment]
    ) -> str:
        payload = {
            "commit_id": commit_id,
            "event": "COMMENT",
            "body": body,
            "comments": [c.payload() for c in comments],
        }
        data = self._call("POST", f"/pulls/{number}/reviews", payload)
        return str(_need(data, "html_url", str, "the review"))

    def edit_review_comment(self, comment_id: int, body: str) -> None:
        self._call("PATCH", f"/pulls/comments/{comment_id}", {"body": body})

    def threads(self, number: int) -> list[Thread]:
        owner, name = self.repository.split("/")
        out: list[Thread] = []
        after: str | None = None
        for _ in range(_MAX_PAGES):
            variables = {"owner": owner, "name": name, "number": number, "after": after}
            _, data = self._r.graphql_query(_THREADS, variables)
            try:
                conn = data["data"]["repository"]["pullRequest"]["reviewThreads"]
                nodes = conn["nodes"]
                for node in nodes:
                    first = node["comments"]["nodes"]
                    # `databaseId` is a 32-bit Int that today's ids overflow; `fullDatabaseId`
                    # is a BigInt, sent as a string.
                    db_id = str(first[0].get("fullDatabaseId") or "") if first else ""
                    out.append(
                        Thread(
                            str(node["id"]),
                            bool(node["isResolved"]),
                            int(db_id) if db_id.isdigit() else None,
                        )
                    )
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = str(conn["pageInfo"]["endCursor"])
            except (KeyError, TypeError, IndexError) as exc:
                raise OutletError(
                    f"review threads of #{number}: unexpected answer ({exc})"
                ) from None
        return out

    def resolve_thread(self, thread_id: str) -> None:
        self._r.graphql_query(_RESOLVE, {"thread": thread_id})
