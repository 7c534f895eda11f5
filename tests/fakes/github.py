"""A loopback GitHub server for the REST (and GraphQL) calls gatebot makes, via GITHUB_API_URL.

Every request is checked against GitHub's official REST OpenAPI description (the pinned
`@octokit/openapi` package, tests/fakes/github_openapi.py): an undocumented path or method, a
missing or mistyped parameter, a body that breaks the documented schema is answered like
GitHub would (404 / 422) AND recorded as a violation; the `github_server` fixture fails the
test with the list of violations at teardown (`FakeGitHub.stop()` does the same). GraphQL
documents are checked against GitHub's published GraphQL schema (tests/fakes/github_graphql.py).

Resources served (one module each): check runs (tests/fakes/github_checks.py); pull requests,
reviews, review comments, issue comments, reactions and collaborator permissions
(tests/fakes/github_pulls.py). `FakeGitHub(ghes=True)` serves GitHub Enterprise Server's
layout instead (`/api/v3`, `/api/graphql`), checked against the oldest GHES description in
the package. Faults on demand: `fail(...)` queues responses (403 permission, 403 secondary
rate limit with retry-after, 422, 5xx) for the next matching requests. Events between two
requests on demand: `after(...)` runs an action (a push, say) right after a matching request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.fakes import github_checks, github_graphql, github_pulls
from tests.fakes.github_checks import CheckRun, Invalid
from tests.fakes.github_openapi import DOTCOM, GHES_OLDEST, RestDescription, rest_description
from tests.fakes.loopback_http import LoopbackHTTPServer

TOKEN = "ghs_fake_token_for_tests_0123456789"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
GHES_PREFIX = "/api/v3"

__all__ = ["TOKEN", "Call", "CheckRun", "FakeGitHub", "Recorded", "github_server"]


@dataclass
class Recorded:
    method: str
    path: str  # without the GHES prefix
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Call:
    """A routed request: the repository it names, its path parameters, query and body."""

    owner: str
    repo: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


Handler = Callable[["FakeGitHub", Call], tuple[int, Any]]


@dataclass
class Fault:
    method: str
    path_re: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class Hook:
    method: str
    path_re: re.Pattern[str]
    action: Callable[[], None]
    skip: int  # matching requests answered before the one it follows


def _repo(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    return 200, fake.repo_json(call.owner, call.repo)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    rx = "".join(f"(?P<{p}>[^/]+)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(rx)


ROUTES: list[tuple[str, str, Handler]] = [
    ("get", "/repos/{owner}/{repo}", _repo),
    *github_checks.ROUTES,
    *github_pulls.ROUTES,
]
_COMPILED = [(m, _compile(t), h) for m, t, h in ROUTES]
OPERATIONS = tuple(sorted({(m, t) for m, t, _ in ROUTES}))


class FakeGitHub(github_pulls.PullsState):
    def __init__(self, token: str = TOKEN, *, ghes: bool = False) -> None:
        self.token = token
        self.ghes = ghes
        self.requests: list[Recorded] = []
        self.runs: dict[int, CheckRun] = {}
        self.violations: list[str] = []
        self._init_pulls()
        self._faults: list[Fault] = []
        self._hooks: list[Hook] = []
        self._lock = threading.RLock()
        self._next_id = 4_000_000_001
        self._http = LoopbackHTTPServer()
        self.description: RestDescription = rest_description(
            OPERATIONS, GHES_OLDEST if ghes else DOTCOM
        )
        self.graphql = github_graphql.GraphQL(self)

    # -- control -------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return self._http.url

    @property
    def url(self) -> str:
        """What GITHUB_API_URL is set to."""
        return self.root + (GHES_PREFIX if self.ghes else "")

    @property
    def server_url(self) -> str:
        """What GITHUB_SERVER_URL is set to (html links)."""
        return self.root if self.ghes else "https://github.invalid"

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def start(self) -> FakeGitHub:
        self._http.serve(type("Handler", (_Handler,), {"fake": self}))
        return self

    def stop(self, *, check: bool = True) -> None:
        self._http.shutdown()
        if check:
            self.assert_documented()

    def assert_documented(self) -> None:
        """Fail with every request that did not match GitHub's published descriptions."""
        if self.violations:
            listed = "\n  - ".join(self.violations)
            raise AssertionError(
                f"{len(self.violations)} request(s) to the GitHub fake do not match GitHub's "
                f"API description ({self.description.flavour} {self.description.version}):"
                f"\n  - {listed}"
            )

    def take_violations(self) -> list[str]:
        """The violations so far, cleared: for tests that send an invalid request on purpose."""
        with self._lock:
            taken, self.violations = self.violations, []
        return taken

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests matching (method, path regex) with `status`."""
        body = {
            "message": message or f"fault injected: HTTP {status}",
            "documentation_url": "https://docs.github.com/rest",
        }
        with self._lock:
            self._faults.append(
                Fault(method, re.compile(path), status, body, dict(headers or {}), times)
            )

    def after(self, method: str, path: str, action: Callable[[], None], *, skip: int = 0) -> None:
        """Run `action` once, right after the server has handled the (skip+1)-th request
        matching (method, path regex) and before it answers: the client gets the state
        before the action, its next request the state after (a push landing between a read
        and a write)."""
        with self._lock:
            self._hooks.append(Hook(method, re.compile(path), action, skip))

    def run_hooks(self, method: str, path: str) -> None:
        due: list[Hook] = []
        with self._lock:
            for hook in list(self._hooks):
                if re.fullmatch(hook.method, method) and hook.path_re.search(path):
                    if hook.skip > 0:
                        hook.skip -= 1
                    else:
                        self._hooks.remove(hook)
                        due.append(hook)
        for hook in due:
            hook.action()

    def forbid_checks(self, times: int = 1_000) -> None:
        """The read-only token of a fork PR: check-run writes answer 403."""
        self.fail(
            "POST|PATCH",
            r"/check-runs",
            403,
            times=times,
            message="Resource not accessible by integration",
        )

    def secondary_rate_limit(self, method: str, path: str, times: int = 1) -> None:
        self.fail(
            method,
            path,
            403,
            times=times,
            message=SECONDARY_LIMIT_MESSAGE,
            headers={"retry-after": "0", "x-ratelimit-remaining": "4999"},
        )

    def calls(self, method: str, path_re: str = "") -> list[Recorded]:
        rx = re.compile(path_re)
        return [r for r in self.requests if r.method == method and rx.search(r.path)]

    def runs_for(self, head_sha: str, name: str | None = None) -> list[CheckRun]:
        return [r for r in self.runs.values() if r.head_sha == head_sha and name in (None, r.name)]

    # -- behaviour -----------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if re.fullmatch(fault.method, method) and fault.path_re.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def repo_json(self, owner: str, repo: str) -> dict[str, Any]:
        return {
            "id": 1_296_269,
            "node_id": "R_kgDOABCDEF",
            "name": repo,
            "full_name": f"{owner}/{repo}",
            "private": False,
            "fork": False,
            "default_branch": "main",
            "url": f"{self.url}/repos/{owner}/{repo}",
            "html_url": f"{self.server_url}/{owner}/{repo}",
            "owner": {"login": owner, "id": 1, "type": "Organization"},
        }

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        call_body: Any,
        headers: dict[str, str],
    ) -> tuple[int, Any]:
        for route_method, rx, handler in _COMPILED:
            m = rx.fullmatch(path)
            if m and route_method == method.lower():
                params = {k: unquote(v) for k, v in m.groupdict().items()}
                call = Call(
                    params.pop("owner"), params.pop("repo"), params, query, call_body, headers
                )
                with self._lock:
                    return handler(self, call)
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        if self.fake.ghes:
            self.send_header("X-GitHub-Enterprise-Version", GHES_OLDEST.removeprefix("ghes-"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # a bug in the fake: fail the test loudly, not a hang
            self.fake.violations.append(f"the GitHub fake crashed: {type(exc).__name__}: {exc}")
            self._send(500, {"message": "fake crashed"})

    def _serve(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = parse_qs(parts.query)
        headers = dict(self.headers)
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(400, {"message": "Problems parsing JSON"})
            return
        graphql_path = "/api/graphql" if fake.ghes else "/graphql"
        prefix = GHES_PREFIX if fake.ghes else ""
        is_graphql = path == graphql_path and self.command == "POST"
        if not is_graphql:
            if not path.startswith(prefix + "/"):
                fake.violations.append(f"{self.command} {path}: outside the API root {prefix}/")
                self._send(404, {"message": "Not Found"})
                return
            path = path[len(prefix) :]
        with fake._lock:
            fake.requests.append(Recorded(self.command, path, query, headers, body))
        auth = self.headers.get("Authorization", "")
        if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
            self._send(401, {"message": "Bad credentials"})
            return
        if is_graphql:
            status, payload = fake.graphql.execute(body)
            self._send(status, payload)
            return
        problem = fake.description.problem(self.command, path, query, headers, raw)
        if problem is not None:
            status, message = problem
            with fake._lock:
                fake.violations.append(message)
            self._send(status, {"message": "Invalid request.", "errors": [message]})
            return
        fault = fake.take_fault(self.command, path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        try:
            status, payload = fake.handle(self.command, path, query, body, headers)
        except Invalid as exc:
            status, payload = 422, {"message": "Validation Failed", "errors": [str(exc)]}
        fake.run_hooks(self.command, path)
        self._send(status, payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch


@pytest.fixture
def github_server() -> Iterator[FakeGitHub]:
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()
