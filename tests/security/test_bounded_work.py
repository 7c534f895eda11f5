"""Bounded work: what a model answers, and what a diff holds, cannot make the gate's time and
memory grow without bound or fill verdict.json.

- A 30 MB answer with 200,000 findings — with a Content-Length, without one (chunked), or as
  a small gzip body that inflates to 30 MB — is refused after at most 4 MiB, asked again
  within the run's call cap, and its files end not reviewed: peak memory stays bounded.
- An answer under the byte cap with tens of thousands of findings keeps the most severe
  (review.max_findings_per_file per file, review.max_findings per run), counts the rest in
  findings_omitted and says so in the summary.
The diff's shapes (thousands of hunks in one file, one huge line, thousands of files) are in
test_bounded_diff_shapes (slow) and benchmarks/review_overhead.py.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github import FakeGitHub
from tests.security.prgate import Gate
from tests.security.rawmodel import RawModel, Reply

FAST = {"attempts": 1, "initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter_s": 0.0}
CONFIG = {"review": {"gemini": FAST, "unreviewed": "neutral"}}
FILES = 3


def _answer(n: int, blocks: int) -> bytes:
    """A generateContent body whose answer holds `n` findings spread over `blocks` blocks."""
    findings = [
        {
            "file": 1 + i % blocks,
            "line": 1,
            "end_line": 1,
            "severity": ("critical", "low", "info", "medium")[i % 4],
            "category": "flood",
            "message": f"finding number {i} " + "x" * 80,
        }
        for i in range(n)
    ]
    text = json.dumps({"reviewed": list(range(1, blocks + 1)), "findings": findings})
    body = {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 100},
    }
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def flood() -> bytes:
    data = _answer(200_000, FILES)
    assert len(data) > 30_000_000
    return data


def _pr(gate: Gate) -> str:
    gate.main({f"m{i}.py": f"x = {i}\n" for i in range(FILES)}, config=CONFIG)
    return gate.push({f"m{i}.py": f"x = {i + 1}\n" for i in range(FILES)})


@pytest.fixture
def model_for(tmp_path: Path, github_server: FakeGitHub) -> Iterator[Any]:
    started: list[RawModel] = []

    def make(shape: Any) -> tuple[Gate, RawModel]:
        model = RawModel(shape).start()
        started.append(model)
        return Gate(tmp_path, github_server, model), model  # type: ignore[arg-type]

    yield make
    for m in started:
        m.stop()


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("wire", ["content-length", "chunked", "gzip"])
def test_a_30_mb_answer_is_refused_and_memory_stays_bounded(
    model_for: Any, flood: bytes, wire: str
) -> None:
    def shape(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
        if wire == "gzip":
            return Reply(headers={"Content-Encoding": "gzip"}, chunks=[gzip.compress(flood, 1)])
        return Reply(chunks=_chunks(flood), length=wire == "content-length")

    gate, model = model_for(shape)
    run = gate.run(_pr(gate), measure=True)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.check.conclusion == "failure"  # even with fail-open: content is not an outage
    assert set(run.causes().values()) <= {"content", "budget"} and len(run.causes()) == FILES
    m = run.verdict["metrics"]
    assert model.generate_calls <= m["api_calls_cap"] == 6
    assert (gate.out / "verdict.json").stat().st_size < 100_000
    assert run.rss_mb is not None and run.rss_mb < 200, run.rss_mb  # ~1 GB before the cap
    reason = run.verdict["files"][0]["not_reviewed"]["reason"]
    assert "answer refused" in reason or "call cap" in reason


def test_a_flood_of_findings_under_the_byte_cap_keeps_the_most_severe(model_for: Any) -> None:
    data = _answer(15_000, FILES)  # ~3.2 MB: read, parsed, and capped
    assert len(data) < 4 * 1024 * 1024

    def shape(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
        return Reply(chunks=[data])

    gate, _ = model_for(shape)
    run = gate.run(_pr(gate), measure=True)
    v = run.verdict
    per_file = [len([f for f in fr["findings"] if f["source"] == "model"]) for fr in v["files"]]
    assert per_file == [50] * FILES  # review.max_findings_per_file
    kept = [f for fr in v["files"] for f in fr["findings"]]
    assert all(f["severity"] == "critical" for f in kept)  # the most severe are kept
    assert v["metrics"]["findings_omitted"] == 15_000 - 50 * FILES
    assert sum(fr["findings_omitted"] for fr in v["files"]) == 15_000 - 50 * FILES
    summary = (gate.out / "summary.md").read_text()
    assert "more finding(s) than the caps keep" in summary
    assert (gate.out / "verdict.json").stat().st_size < 200_000
    assert run.check.conclusion == "failure"  # critical findings block
    assert len(run.check.annotations) <= 500
