"""Pull requests, reviews, review comments, issue comments, reactions and collaborator
permissions in the loopback GitHub server (GitHub's REST reference: "Pulls", "Pull request
reviews", "Pull request review comments", "Issue comments", "Reactions", "Collaborators").

A test registers a pull request with the unified diff of its base...head (`git diff` output);
review comments are then accepted only where GitHub accepts them: on the RIGHT side, on a line
inside one of the file's hunks, with a multi-line range inside a single hunk (GitHub answers
422 "Pull request review thread line must be part of the diff" otherwise). `push()` moves the
head: comments on lines no longer in the diff become outdated (`line: null`), as on GitHub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tests.fakes.github_checks import Invalid

if TYPE_CHECKING:
    from tests.fakes.github import Call, FakeGitHub

BOT_LOGIN = "github-actions[bot]"  # who GITHUB_TOKEN writes as
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
_LEGACY = {"maintain": "write", "triage": "read"}  # the `permission` field's four values
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_NOW = "2026-11-20T10:00:00Z"


def hunks_of(diff: str) -> dict[str, list[tuple[int, int]]]:
    """Per new path, the new-file line ranges of each hunk (context lines included)."""
    out: dict[str, list[tuple[int, int]]] = {}
    path: str | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            path = None if target == "/dev/null" else target.removeprefix("b/")
            if path is not None:
                out.setdefault(path, [])
        elif line.startswith("diff --git"):
            path = None
        else:
            m = _HUNK.match(line)
            if m and path is not None:
                start, count = int(m.group(1)), int(m.group(2) or "1")
                if count:
                    out[path].append((start, start + count - 1))
    return out


@dataclass
class Pull:
    number: int
    head_sha: str
    base_sha: str
    head_ref: str
    base_ref: str
    author: str
    head_repo: str | None  # None: same repository
    diff: dict[str, list[tuple[int, int]]]
    state: str = "open"
    commits: list[str] = field(default_factory=list)


def now_stamp() -> str:
    """The time now as GitHub writes it (UTC, whole seconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_json(login: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("Bot" if login.endswith("[bot]") else "User")
    return {"login": login, "id": abs(hash(login)) % 10**8, "node_id": f"U_{login}", "type": kind}


class PullsState:
    """The pull-request side of FakeGitHub's state (mixed into it)."""

    def _init_pulls(self) -> None:
        self.pulls: dict[int, Pull] = {}
        self.permissions: dict[str, str] = {}
        self.issue_comments: dict[int, dict[str, Any]] = {}
        self.reactions: list[dict[str, Any]] = []
        self.reviews: dict[int, dict[str, Any]] = {}
        self.review_comments: dict[int, dict[str, Any]] = {}

    def add_pull(
        self,
        number: int,
        *,
        head_sha: str,
        base_sha: str,
        diff: str,
        author: str = "octocat",
        head_ref: str = "feature",
        base_ref: str = "main",
        head_repo: str | None = None,
    ) -> Pull:
        pull = Pull(
            number,
            head_sha,
            base_sha,
            head_ref,
            base_ref,
            author,
            head_repo,
            hunks_of(diff),
            commits=[head_sha],
        )
        self.pulls[number] = pull
        return pull

    def push(self, number: int, head_sha: str, diff: str) -> None:
        """A new head: comments whose line left the diff become outdated."""
        pull = self.pulls[number]
        pull.head_sha, pull.diff = head_sha, hunks_of(diff)
        pull.commits.append(head_sha)
        for c in self.review_comments.values():
            start = c["start_line"] or c["line"]
            if (
                c["pull"] == number
                and c["line"]
                and not _in_hunk(pull.diff, c["path"], start, c["line"])
            ):
                c["line"] = c["start_line"] = None

    def grant(self, login: str, permission: str) -> None:
        assert permission in PERMISSIONS, permission
        self.permissions[login] = permission

    def comment(self, number: int, body: str, login: str, kind: str = "User") -> dict[str, Any]:
        """A comment someone posted on the PR (what an issue_comment event is about), stamped
        with the time now in whole seconds, as GitHub stamps `created_at`."""
        fake: Any = self
        cid = fake.next_id()
        self.issue_comments[cid] = {
            "id": cid,
            "issue": number,
            "body": body,
            "user": user_json(login, kind),
            "created_at": now_stamp(),
        }
        return self.issue_comments[cid]

    def replies(self, number: int) -> list[dict[str, Any]]:
        return [
            c
            for c in self.issue_comments.values()
            if c["issue"] == number and c["user"]["login"] == BOT_LOGIN
        ]

    def threads(self, number: int) -> list[dict[str, Any]]:
        """Top-level review comments (one per thread) on the PR, oldest first."""
        return [
            c
            for c in self.review_comments.values()
            if c["pull"] == number and c["in_reply_to_id"] is None
        ]


def _in_hunk(diff: dict[str, list[tuple[int, int]]], path: str, start: int, end: int) -> bool:
    return any(lo <= start <= end <= hi for lo, hi in diff.get(path, []))


def _pull_or_404(fake: FakeGitHub, call: Call, key: str = "pull_number") -> Pull | None:
    return fake.pulls.get(int(call.params[key]))


def pull_json(fake: FakeGitHub, owner: str, repo: str, p: Pull) -> dict[str, Any]:
    base_repo = fake.repo_json(owner, repo)
    head_repo = base_repo
    if p.head_repo is not None:
        o, n = p.head_repo.split("/")
        head_repo = {**fake.repo_json(o, n), "id": 9_999_999, "fork": True}
    api = f"{fake.url}/repos/{owner}/{repo}"
    return {
        "id": 1_000_000 + p.number,
        "node_id": f"PR_{p.number}",
        "number": p.number,
        "state": p.state,
        "draft": False,
        "merged": False,
        "title": f"PR {p.number}",
        "url": f"{api}/pulls/{p.number}",
        "html_url": f"{fake.server_url}/{owner}/{repo}/pull/{p.number}",
        "user": user_json(p.author),
        "head": {
            "sha": p.head_sha,
            "ref": p.head_ref,
            "label": f"x:{p.head_ref}",
            "repo": head_repo,
            "user": user_json(p.author),
        },
        "base": {
            "sha": p.base_sha,
            "ref": p.base_ref,
            "label": f"{owner}:{p.base_ref}",
            "repo": base_repo,
            "user": user_json(owner),
        },
    }


def get_pull(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    p = _pull_or_404(fake, call)
    return (
        (200, pull_json(fake, call.owner, call.repo, p)) if p else (404, {"message": "Not Found"})
    )


def review_comment_json(fake: FakeGitHub, call: Call, c: dict[str, Any]) -> dict[str, Any]:
    api = f"{fake.url}/repos/{call.owner}/{call.repo}"
    return {
        "id": c["id"],
        "node_id": f"PRRC_{c['id']}",
        "pull_request_review_id": c["review"],
        "path": c["path"],
        "line": c["line"],
        "start_line": c["start_line"],
        "original_line": c["original_line"],
        "side": "RIGHT",
        "position": 1 if c["line"] is not None else None,
        "commit_id": c["commit_id"],
        "original_commit_id": c["commit_id"],
        "diff_hunk": "@@",
        "in_reply_to_id": c["in_reply_to_id"],
        "body": c["body"],
        "user": user_json(c["user"]),
        "created_at": _NOW,
        "updated_at": _NOW,
        "url": f"{api}/pulls/comments/{c['id']}",
        "html_url": f"{fake.server_url}/{call.owner}/{call.repo}/pull/{c['pull']}"
        f"#discussion_r{c['id']}",
        "pull_request_url": f"{api}/pulls/{c['pull']}",
        "author_association": "NONE",
        "_links": {},
    }


def list_review_comments(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    p = _pull_or_404(fake, call)
    if p is None:
        return 404, {"message": "Not Found"}
    found = [c for c in fake.review_comments.values() if c["pull"] == p.number]
    # Paginated as GitHub does: `per_page` (default 30, at most 100) and `page` (from 1).
    per_page = min(100, int(call.query.get("per_page", ["30"])[0]))
    page = int(call.query.get("page", ["1"])[0])
    shown = found[(page - 1) * per_page : page * per_page]
    return 200, [review_comment_json(fake, call, c) for c in shown]


def _check_review_comment(p: Pull, i: int, c: dict[str, Any]) -> None:
    where = f"comments[{i}]"
    if "position" in c:
        raise Invalid(f"{where}: use line/side, not the deprecated position")
    if c.get("side", "RIGHT") != "RIGHT" or c.get("start_side", "RIGHT") != "RIGHT":
        raise Invalid(f"{where}: only RIGHT-side comments are expected from gatebot")
    if c["path"] not in p.diff:
        raise Invalid(f"{where}: Path could not be resolved")
    line = c.get("line")
    if not isinstance(line, int):
        raise Invalid(f"{where}: line is required")
    start = c.get("start_line", line)
    if start >= line and "start_line" in c:
        raise Invalid(f"{where}: start_line must precede line")
    if not _in_hunk(p.diff, c["path"], line, line):
        raise Invalid(f"{where}: Pull request review thread line must be part of the diff")
    if not _in_hunk(p.diff, c["path"], start, line):
        raise Invalid(
            f"{where}: Pull request review thread start line must be part of the same hunk "
            "as the line"
        )


def create_review(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    p = _pull_or_404(fake, call)
    if p is None:
        return 404, {"message": "Not Found"}
    body = call.body or {}
    if body.get("commit_id", p.head_sha) not in p.commits:
        raise Invalid("commit_id is not part of the pull request")
    if body.get("event") in ("COMMENT", "REQUEST_CHANGES") and not body.get("body"):
        raise Invalid("body is required for COMMENT and REQUEST_CHANGES reviews")
    comments = body.get("comments", [])
    for i, c in enumerate(comments):
        _check_review_comment(p, i, c)
    rid = fake.next_id()
    commit = body.get("commit_id", p.head_sha)
    fake.reviews[rid] = {
        "id": rid,
        "pull": p.number,
        "body": body.get("body", ""),
        "event": body.get("event"),
        "commit_id": commit,
    }
    for c in comments:
        cid = fake.next_id()
        fake.review_comments[cid] = {
            "id": cid,
            "review": rid,
            "pull": p.number,
            "path": c["path"],
            "line": c["line"],
            "start_line": c.get("start_line"),
            "original_line": c["line"],
            "body": c["body"],
            "commit_id": commit,
            "in_reply_to_id": None,
            "user": BOT_LOGIN,
            "resolved": False,
            "minimized": False,
        }
    state = {"COMMENT": "COMMENTED", "APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
    return 200, {
        "id": rid,
        "node_id": f"PRR_{rid}",
        "user": user_json(BOT_LOGIN),
        "body": body.get("body", ""),
        "state": state.get(body.get("event") or "", "PENDING"),
        "commit_id": commit,
        "html_url": f"{fake.server_url}/{call.owner}/{call.repo}/pull/{p.number}"
        f"#pullrequestreview-{rid}",
        "pull_request_url": f"{fake.url}/repos/{call.owner}/{call.repo}/pulls/{p.number}",
        "author_association": "NONE",
        "_links": {},
    }


def update_review_comment(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    c = fake.review_comments.get(int(call.params["comment_id"]))
    if c is None:
        return 404, {"message": "Not Found"}
    c["body"] = call.body["body"]
    return 200, review_comment_json(fake, call, c)


def issue_comment_json(fake: FakeGitHub, call: Call, c: dict[str, Any]) -> dict[str, Any]:
    api = f"{fake.url}/repos/{call.owner}/{call.repo}"
    return {
        "id": c["id"],
        "node_id": f"IC_{c['id']}",
        "body": c["body"],
        "user": c["user"],
        "created_at": c.get("created_at", _NOW),
        "updated_at": c.get("created_at", _NOW),
        "url": f"{api}/issues/comments/{c['id']}",
        "html_url": f"{fake.server_url}/{call.owner}/{call.repo}/pull/{c['issue']}"
        f"#issuecomment-{c['id']}",
        "issue_url": f"{api}/issues/{c['issue']}",
        "author_association": "NONE",
    }


def create_issue_comment(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    number = int(call.params["issue_number"])
    if number not in fake.pulls:
        return 404, {"message": "Not Found"}
    if len(call.body["body"]) > 65_536:
        raise Invalid("body is too long (maximum is 65536 characters)")
    cid = fake.next_id()
    fake.issue_comments[cid] = {
        "id": cid,
        "issue": number,
        "body": call.body["body"],
        "user": user_json(BOT_LOGIN),
        "created_at": now_stamp(),
    }
    return 201, issue_comment_json(fake, call, fake.issue_comments[cid])


def create_reaction(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    cid = int(call.params["comment_id"])
    if cid not in fake.issue_comments:
        return 404, {"message": "Not Found"}
    content = call.body["content"]
    for r in fake.reactions:
        if r["comment"] == cid and r["content"] == content:
            return 200, r["json"]  # GitHub answers 200 with the existing reaction
    rid = fake.next_id()
    reaction = {
        "id": rid,
        "node_id": f"REA_{rid}",
        "content": content,
        "user": user_json(BOT_LOGIN),
        "created_at": _NOW,
    }
    fake.reactions.append({"comment": cid, "content": content, "json": reaction})
    return 201, reaction


def permission(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    login = call.params["username"]
    role = fake.permissions.get(login)
    if role is None:
        return 404, {"message": f"{login} is not a user"}
    return 200, {
        "permission": _LEGACY.get(role, role),
        "role_name": role,
        "user": {**user_json(login), "permissions": {}},
    }


ROUTES = [
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}", get_pull),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/comments", list_review_comments),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", create_review),
    ("patch", "/repos/{owner}/{repo}/pulls/comments/{comment_id}", update_review_comment),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments", create_issue_comment),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", create_reaction),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission", permission),
]
