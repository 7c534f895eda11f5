"""A loopback GitHub REST server for the endpoints gatebot uses, reached through GITHUB_API_URL.

Speaks, as documented in GitHub's REST reference (checks/runs):
  POST  /repos/{owner}/{repo}/check-runs                    create a check run
  PATCH /repos/{owner}/{repo}/check-runs/{id}               update (annotations append)
  GET   /repos/{owner}/{repo}/check-runs/{id}               get
  GET   /repos/{owner}/{repo}/check-runs/{id}/annotations   list annotations
  GET   /repos/{owner}/{repo}/commits/{ref}/check-runs      list for a ref (check_name, filter)
  GET   /repos/{owner}/{repo}                               the repository
Bodies are validated like GitHub does (HTTP 422 for an unknown conclusion, more than 50
annotations, a summary over 65,535 characters, unknown fields). Every request is recorded.
Faults on demand: `fail(...)` queues responses (403 permission, 403 secondary rate limit with
retry-after, 422, 5xx) for the next matching requests.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.loopback_http import LoopbackHTTPServer

TOKEN = "ghs_fake_token_for_tests_0123456789"
TEXT_LIMIT = 65_535
STATUSES = {"queued", "in_progress", "completed", "waiting", "requested", "pending"}
CONCLUSIONS = {
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
}
LEVELS = {"notice", "warning", "failure"}
RUN_FIELDS = {
    "name",
    "head_sha",
    "details_url",
    "external_id",
    "status",
    "started_at",
    "conclusion",
    "completed_at",
    "output",
    "actions",
}
OUTPUT_FIELDS = {"title", "summary", "text", "annotations", "images"}
ANNOTATION_FIELDS = {
    "path",
    "start_line",
    "end_line",
    "start_column",
    "end_column",
    "annotation_level",
    "message",
    "title",
    "raw_details",
}
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


class Invalid(Exception):
    """A request body GitHub would answer with 422 Unprocessable Entity."""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    path_re: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class CheckRun:
    id: int
    owner: str
    repo: str
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    details_url: str | None = None
    external_id: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)


def _validate_output(output: Any, creating: bool) -> None:
    if not isinstance(output, dict):
        raise Invalid("output must be an object")
    unknown = set(output) - OUTPUT_FIELDS
    if unknown:
        raise Invalid(f"output: unknown fields {sorted(unknown)}")
    for key in ("title", "summary"):
        if not isinstance(output.get(key), str):
            raise Invalid(f"output.{key} is required and must be a string")
    for key in ("summary", "text"):
        value = output.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > TEXT_LIMIT):
            raise Invalid(f"output.{key} is too long (maximum is {TEXT_LIMIT} characters)")
    annotations = output.get("annotations", [])
    if not isinstance(annotations, list):
        raise Invalid("output.annotations must be an array")
    if len(annotations) > 50:
        raise Invalid("output.annotations: only 50 annotations are allowed per request")
    for i, a in enumerate(annotations):
        if not isinstance(a, dict):
            raise Invalid(f"output.annotations[{i}] must be an object")
        unknown = set(a) - ANNOTATION_FIELDS
        if unknown:
            raise Invalid(f"output.annotations[{i}]: unknown fields {sorted(unknown)}")
        for key in ("path", "message"):
            if not isinstance(a.get(key), str) or not a[key]:
                raise Invalid(f"output.annotations[{i}].{key} is required")
        for key in ("start_line", "end_line"):
            if not isinstance(a.get(key), int) or a[key] < 1:
                raise Invalid(f"output.annotations[{i}].{key} must be a positive integer")
        if a["end_line"] < a["start_line"]:
            raise Invalid(f"output.annotations[{i}]: end_line is before start_line")
        if a.get("annotation_level") not in LEVELS:
            raise Invalid(f"output.annotations[{i}].annotation_level must be one of {LEVELS}")


def _validate_run(body: Any, creating: bool) -> None:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    unknown = set(body) - RUN_FIELDS
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}")
    if creating:
        for key in ("name", "head_sha"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise Invalid(f"{key} is required")
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status {status!r} is not one of {sorted(STATUSES)}")
    conclusion = body.get("conclusion")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise Invalid(f"conclusion {conclusion!r} is not one of {sorted(CONCLUSIONS)}")
    if status == "completed" and conclusion is None:
        raise Invalid("conclusion is required when status is completed")
    if conclusion is not None and status not in (None, "completed"):
        raise Invalid("a conclusion requires status completed")
    if "output" in body:
        _validate_output(body["output"], creating)


class FakeGitHub:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[Recorded] = []
        self.runs: dict[int, CheckRun] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._next_id = 4_000_000_001
        self._http = LoopbackHTTPServer()

    # -- control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> FakeGitHub:
        self._http.serve(type("Handler", (_Handler,), {"fake": self}))
        return self

    def stop(self) -> None:
        self._http.shutdown()

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

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if re.fullmatch(fault.method, method) and fault.path_re.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def run_json(self, run: CheckRun) -> dict[str, Any]:
        base = f"{self.url}/repos/{run.owner}/{run.repo}"
        return {
            "id": run.id,
            "node_id": f"CR_{run.id}",
            "name": run.name,
            "head_sha": run.head_sha,
            "external_id": run.external_id or "",
            "url": f"{base}/check-runs/{run.id}",
            "html_url": f"https://github.invalid/{run.owner}/{run.repo}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{base}/check-runs/{run.id}/annotations",
            },
            "check_suite": {"id": 5_000_000_001},
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
            "pull_requests": [],
        }

    def repo_json(self, owner: str, repo: str) -> dict[str, Any]:
        return {
            "id": 1_296_269,
            "name": repo,
            "full_name": f"{owner}/{repo}",
            "private": False,
            "fork": False,
            "default_branch": "main",
            "url": f"{self.url}/repos/{owner}/{repo}",
            "owner": {"login": owner, "id": 1, "type": "Organization"},
        }

    def apply(self, run: CheckRun, body: dict[str, Any]) -> None:
        for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if key in body:
                setattr(run, key, body[key])
        if "conclusion" in body:
            run.conclusion = body["conclusion"]
            run.status = "completed"
        if "status" in body:
            run.status = body["status"]
            if body["status"] != "completed":
                run.conclusion = None
        if "output" in body:
            out = body["output"]
            run.title, run.summary = out["title"], out["summary"]
            if "text" in out:
                run.text = out["text"]
            run.annotations.extend(out.get("annotations", []))

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        """Returns (status, json) for a routed, authorised, fault-free request."""
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not m:
            return 404, {"message": "Not Found"}
        owner, repo, rest = m.group(1), m.group(2), m.group(3) or ""
        with self._lock:
            if method == "GET" and rest == "":
                return 200, self.repo_json(owner, repo)
            if method == "POST" and rest == "/check-runs":
                _validate_run(body, creating=True)
                run = CheckRun(self._next_id, owner, repo, body["name"], body["head_sha"])
                self._next_id += 1
                self.apply(run, body)
                self.runs[run.id] = run
                return 201, self.run_json(run)
            cm = re.fullmatch(r"/check-runs/(\d+)(/annotations)?", rest)
            if cm:
                found = self.runs.get(int(cm.group(1)))
                if found is None or (found.owner, found.repo) != (owner, repo):
                    return 404, {"message": "Not Found"}
                if method == "PATCH" and not cm.group(2):
                    _validate_run(body, creating=False)
                    self.apply(found, body)
                    return 200, self.run_json(found)
                if method == "GET":
                    if cm.group(2):
                        return 200, [
                            {"blob_href": "", **a, "start_column": None, "end_column": None}
                            for a in found.annotations
                        ]
                    return 200, self.run_json(found)
            rm = re.fullmatch(r"/commits/([^/]+)/check-runs", rest)
            if rm and method == "GET":
                ref = rm.group(1)
                name = query.get("check_name", [None])[0]
                runs = [
                    r
                    for r in self.runs.values()
                    if (r.owner, r.repo) == (owner, repo)
                    and r.head_sha == ref
                    and name in (None, r.name)
                ]
                if query.get("filter", ["latest"])[0] == "latest":
                    latest: dict[str, CheckRun] = {}
                    for r in runs:
                        if r.name not in latest or r.id > latest[r.name].id:
                            latest[r.name] = r
                    runs = list(latest.values())
                runs.sort(key=lambda r: -r.id)
                listed = [self.run_json(r) for r in runs]
                return 200, {"total_count": len(runs), "check_runs": listed}
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(400, {"message": "Problems parsing JSON"})
            return
        fake = self.fake
        with fake._lock:
            fake.requests.append(
                Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
            )
        auth = self.headers.get("Authorization", "")
        if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
            self._send(401, {"message": "Bad credentials"})
            return
        fault = fake._take_fault(self.command, parts.path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        try:
            status, payload = fake.handle(self.command, parts.path, parse_qs(parts.query), body)
        except Invalid as exc:
            status, payload = 422, {"message": "Invalid request.", "errors": [str(exc)]}
        self._send(status, payload)

    do_GET = do_POST = do_PATCH = _dispatch


@pytest.fixture
def github_server() -> Iterator[FakeGitHub]:
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()
