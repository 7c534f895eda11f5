"""Check runs in the loopback GitHub server (GitHub's REST reference, "Check runs").

Beyond the OpenAPI description (checked for every request in tests/fakes/github.py), bodies
are checked the way GitHub answers them: HTTP 422 for a conclusion without `completed`, more
than 50 annotations in one request, an annotation whose end is before its start, unknown
fields. Annotations append on each update, as on GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.github import Call, FakeGitHub

TEXT_LIMIT = 65_535
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


class Invalid(Exception):
    """A request body GitHub would answer with 422 Unprocessable Entity."""


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


def _validate_output(output: Any) -> None:
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
    if len(annotations) > 50:
        raise Invalid("output.annotations: only 50 annotations are allowed per request")
    for i, a in enumerate(annotations):
        unknown = set(a) - ANNOTATION_FIELDS
        if unknown:
            raise Invalid(f"output.annotations[{i}]: unknown fields {sorted(unknown)}")
        for key in ("path", "message"):
            if not a[key]:
                raise Invalid(f"output.annotations[{i}].{key} must not be empty")
        for key in ("start_line", "end_line"):
            if a[key] < 1:
                raise Invalid(f"output.annotations[{i}].{key} must be a positive integer")
        if a["end_line"] < a["start_line"]:
            raise Invalid(f"output.annotations[{i}]: end_line is before start_line")


def _validate_run(body: dict[str, Any]) -> None:
    unknown = set(body) - RUN_FIELDS
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}")
    status = body.get("status")
    conclusion = body.get("conclusion")
    if status == "completed" and conclusion is None:
        raise Invalid("conclusion is required when status is completed")
    if conclusion is not None and status not in (None, "completed"):
        raise Invalid("a conclusion requires status completed")
    if "output" in body:
        _validate_output(body["output"])


def run_json(fake: FakeGitHub, run: CheckRun) -> dict[str, Any]:
    base = f"{fake.url}/repos/{run.owner}/{run.repo}"
    return {
        "id": run.id,
        "node_id": f"CR_{run.id}",
        "name": run.name,
        "head_sha": run.head_sha,
        "external_id": run.external_id or "",
        "url": f"{base}/check-runs/{run.id}",
        "html_url": f"{fake.server_url}/{run.owner}/{run.repo}/runs/{run.id}",
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


def _apply(run: CheckRun, body: dict[str, Any]) -> None:
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


def _find(fake: FakeGitHub, call: Call) -> CheckRun | None:
    run = fake.runs.get(int(call.params["check_run_id"]))
    if run is None or (run.owner, run.repo) != (call.owner, call.repo):
        return None
    return run


def create(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    _validate_run(call.body)
    run = CheckRun(fake.next_id(), call.owner, call.repo, call.body["name"], call.body["head_sha"])
    _apply(run, call.body)
    fake.runs[run.id] = run
    return 201, run_json(fake, run)


def update(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    run = _find(fake, call)
    if run is None:
        return 404, {"message": "Not Found"}
    _validate_run(call.body)
    _apply(run, call.body)
    return 200, run_json(fake, run)


def get(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    run = _find(fake, call)
    return (200, run_json(fake, run)) if run else (404, {"message": "Not Found"})


def annotations(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    run = _find(fake, call)
    if run is None:
        return 404, {"message": "Not Found"}
    listed = [
        {"blob_href": "", **a, "start_column": None, "end_column": None} for a in run.annotations
    ]
    return 200, listed


def for_ref(fake: FakeGitHub, call: Call) -> tuple[int, Any]:
    ref = call.params["ref"]
    name = call.query.get("check_name", [None])[0]
    runs = [
        r
        for r in fake.runs.values()
        if (r.owner, r.repo) == (call.owner, call.repo)
        and r.head_sha == ref
        and name in (None, r.name)
    ]
    if call.query.get("filter", ["latest"])[0] == "latest":
        latest: dict[str, CheckRun] = {}
        for r in runs:
            if r.name not in latest or r.id > latest[r.name].id:
                latest[r.name] = r
        runs = list(latest.values())
    runs.sort(key=lambda r: -r.id)
    return 200, {"total_count": len(runs), "check_runs": [run_json(fake, r) for r in runs]}


ROUTES = [
    ("post", "/repos/{owner}/{repo}/check-runs", create),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}", update),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}", get),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", annotations),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs", for_ref),
]
