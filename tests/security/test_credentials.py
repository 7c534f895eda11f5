"""The API key goes only to the configured origin; credentials in URLs are never shown.

- The model endpoint answers generateContent with a redirect to another origin (a second
  loopback server): nothing at all reaches that origin — not the key, not the prompt — and
  the files end not reviewed (provider), failing closed.
- The GitHub API redirects a check-run write to another origin: the token does not follow.
- GOOGLE_GEMINI_BASE_URL and GITHUB_API_URL carrying `user:password@` and the model failing
  (so errors are written): the password appears in no output — stdout, stderr, verdict.json,
  summary.md, metrics.json, the runner's files, doctor's report, the requests GitHub got.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.redact import redact
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.security.harness import clean_env, files_under, run_gatebot
from tests.security.prgate import Gate
from tests.security.rawmodel import RawModel, Recorder, Reply

FAST = {"attempts": 1, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.0}
PASSWORD = "hunter2-base-url-password"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    other = Recorder().start()
    yield other
    other.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_cross_origin_redirect_gets_nothing(
    tmp_path: Path, github_server: FakeGitHub, recorder: Recorder, status: int
) -> None:
    def shape(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
        where = f"{recorder.url}/v1beta/models/{model}:generateContent"
        return Reply(status, headers={"Location": where}, chunks=[b""])

    model = RawModel(shape).start()
    try:
        gate = Gate(tmp_path, github_server, model)  # type: ignore[arg-type]
        gate.main({"a.py": "x = 1\n"}, config={"review": {"gemini": FAST}})
        run = gate.run(gate.push({"a.py": "x = 2\n"}))
        assert recorder.seen == []  # not the key, not the prompt: no request at all
        assert run.check.conclusion == "failure"
        assert run.causes() == {"a.py": "provider"}
        reason = run.verdict["files"][0]["not_reviewed"]["reason"]
        assert "refused to send" in reason or f"HTTP {status}" in reason
        shown = [ln for ln in (run.proc.stdout + run.proc.stderr).splitlines()]
        assert not [ln for ln in shown if model.api_key in ln and not ln.startswith("::add-mask::")]
    finally:
        model.stop()


def test_the_github_token_does_not_follow_a_redirect_elsewhere(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini, recorder: Recorder
) -> None:
    gate = Gate(tmp_path, github_server, gemini_server)
    gate.main({"a.py": "x = 1\n"}, config={"review": {"gemini": FAST}})
    head = gate.push({"a.py": "x = 2\n"})
    where = f"{recorder.url}/repos/octo-org/inf-trader/check-runs"
    github_server.fail("POST", r"/check-runs$", 307, times=50, headers={"Location": where})
    run = gate.run(head)
    assert run.code in (0, 1), run.proc.stderr[-2000:]
    for seen in recorder.seen:
        assert github_server.token not in json.dumps(seen.headers)
        assert "authorization" not in {k.lower() for k in seen.headers}
    github_server.take_violations()  # the redirected writes are not GitHub's API shape


def test_credentials_in_base_urls_are_shown_nowhere(
    tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini
) -> None:
    gate = Gate(tmp_path, github_server, gemini_server)
    gate.main({"a.py": "x = 1\n"}, config={"review": {"gemini": FAST}})
    head = gate.push({"a.py": "x = 2\n"})
    gemini_server.fail("503", times=-1)  # errors get written: they must not carry the URL's secret
    gemini_url = gemini_server.url.replace("http://", f"http://gate:{PASSWORD}@")
    github_url = github_server.url.replace("http://", f"http://gh:{PASSWORD}@")
    run = gate.run(head, GOOGLE_GEMINI_BASE_URL=gemini_url, GITHUB_API_URL=github_url)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.causes() == {"a.py": "provider"}
    texts = files_under(gate.out, gate.runner, gate.cache)
    texts["stdout"] = run.proc.stdout.encode()
    texts["stderr"] = run.proc.stderr.encode()
    texts["github requests"] = json.dumps([r.body for r in github_server.requests]).encode()
    assert [where for where, data in texts.items() if PASSWORD.encode() in data] == []

    env = clean_env(
        GEMINI_API_KEY=gemini_server.api_key,
        GOOGLE_GEMINI_BASE_URL=gemini_url.replace("127.0.0.1", "127.0.0.1.invalid"),
        GITHUB_API_URL=github_url,
    )
    for args in (["doctor", "--repo", str(gate.repo.path)], ["doctor", "--json"]):
        doctor = run_gatebot([*args, "--timeout", "3"], env, gate.tmp, timeout=120)
        assert PASSWORD not in doctor.stdout + doctor.stderr, doctor.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p@h.example/x", "https://***@h.example/x"),
        (
            "see http://tok@h:8080/a?key=AIzaSECRET&alt=json",
            "see http://***@h:8080/a?key=***&alt=json",
        ),
        ("GET /v1?api_key=abc;sig=def&x=1", "GET /v1?api_key=***;sig=***&x=1"),
        ("no url here: user@example.com", "no url here: user@example.com"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
