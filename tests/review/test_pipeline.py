"""run_review end to end on real repositories; the model path against the loopback Gemini."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import GatebotConfig
from bot.errors import UsageError
from bot.review.models import Metrics, Verdict
from bot.review.pipeline import NO_KEY_REASON, ReviewRun, run_review, write_outputs
from bot.review.providers import select_provider
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
FAST = {
    "attempts": 2,
    "initial_delay_s": 0,
    "max_delay_s": 0,
    "jitter_s": 0,
    "timeout_s": 5,
    "item_retries": 1,
}


def _cfg(**review: Any) -> GatebotConfig:
    return GatebotConfig(review={"gemini": FAST, **review})


def _module(i: int, extra: str = "") -> str:
    return f'"""module {i}"""\n\n\ndef f{i}(x):\n    return x + {i}\n{extra}'


def _files(rr: ReviewRun) -> dict[str, Any]:
    return {f.path: f for f in rr.verdict.files}


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo")


def _gemini(cfg: GatebotConfig):
    provider = select_provider(os.environ, cfg.review)
    assert provider is not None
    return provider


def test_no_key_reviews_locally(rb: RepoBuilder, tmp_path: Path) -> None:
    base = rb.commit({"a.py": "x = 1\n", "yarn.lock": "a\n", "gone.txt": "x\n"})
    rb.commit(
        {
            "a.py": f"x = 1\nkey = '{AWS}'\n",
            "yarn.lock": "b\n",
            "gone.txt": None,
            "b.py": "def ok():\n    return 1\n",
        },
        branch="feature",
        parents=[base],
    )
    rr = run_review(rb.path, "main", "feature", GatebotConfig(), tmp_path / "cache", None)
    v = rr.verdict
    assert (v.provider, v.degraded, v.degraded_reason) == ("local", True, NO_KEY_REASON)
    assert v.verdict == "fail"  # the committed key is critical
    files = _files(rr)
    assert files["a.py"].status == "reviewed" and files["a.py"].findings[0].category == "secret"
    assert (files["yarn.lock"].status, files["yarn.lock"].reason) == (
        "skipped",
        "lock file (package sources unchanged)",
    )
    assert files["gone.txt"].reason == "deleted"
    assert v.metrics.api_calls == 0 and v.metrics.baseline_api_calls == 3
    assert v.metrics.files_total == 4 and v.metrics.files_skipped == 2
    assert rr.warnings == []  # also: the run history was recorded beside the cache
    assert (tmp_path / "cache" / "history.jsonl").exists()

    out = tmp_path / "out"
    write_outputs(rr, out)
    assert Verdict.model_validate_json((out / "verdict.json").read_text()) == v
    assert Metrics.model_validate_json((out / "metrics.json").read_text()) == v.metrics
    assert "reviewed locally because no GEMINI\\_API\\_KEY" in (out / "summary.md").read_text()


def test_clean_change_passes_and_bad_ref_is_usage_error(rb: RepoBuilder, tmp_path: Path) -> None:
    base = rb.commit({"a.py": "x = 1\n"})
    rb.commit({"a.py": "x = 2\n"}, branch="feature", parents=[base])
    rr = run_review(rb.path, "main", "feature", GatebotConfig(), tmp_path / "c", None)
    assert rr.verdict.verdict == "pass"
    with pytest.raises(UsageError, match="nope"):
        run_review(rb.path, "main", "nope", GatebotConfig(), tmp_path / "c", None)


def test_protected_path_fails_unless_the_config_opens_it(rb: RepoBuilder, tmp_path: Path) -> None:
    base = rb.commit({".github/workflows/ci.yml": "on: push\n"})
    rb.commit(
        {".github/workflows/ci.yml": "on: [push, pull_request]\n"}, branch="feature", parents=[base]
    )
    rr = run_review(rb.path, "main", "feature", GatebotConfig(), tmp_path / "c", None)
    assert (rr.verdict.verdict, rr.verdict.conclusion) == ("fail", "failure")
    assert rr.verdict.needs_human == [".github/workflows/ci.yml"]
    assert _files(rr)[".github/workflows/ci.yml"].reason == (
        "protected path (matches .github/workflows/**)"
    )
    opened = GatebotConfig(review={"protected": {"conclusion": "neutral"}})
    rr = run_review(rb.path, "main", "feature", opened, tmp_path / "c", None)
    assert (rr.verdict.verdict, rr.verdict.conclusion) == ("neutral", "neutral")


def test_gitattributes_generated_is_skipped(rb: RepoBuilder, tmp_path: Path) -> None:
    base = rb.commit({".gitattributes": "api/gen/** linguist-generated\n", "x.py": "1\n"})
    rb.commit({"api/gen/client.py": "def c():\n    pass\n"}, branch="feature", parents=[base])
    rr = run_review(rb.path, "main", "feature", GatebotConfig(), tmp_path / "c", None)
    assert _files(rr)["api/gen/client.py"].reason == (
        "generated (linguist-generated in the base .gitattributes)"
    )


def test_thousand_file_pr(rb: RepoBuilder, tmp_path: Path) -> None:
    files = {f"pkg{i // 100}/m{i}.py": _module(i) for i in range(1000)}
    base = rb.commit(files)
    rb.commit({k: v + "\nVALUE = 1\n" for k, v in files.items()}, branch="feature", parents=[base])
    started = time.perf_counter()
    rr = run_review(rb.path, "main", "feature", GatebotConfig(), tmp_path / "c", None)
    elapsed = time.perf_counter() - started
    assert rr.verdict.metrics.files_total == 1000
    assert rr.verdict.verdict == "pass"
    assert elapsed < 20, elapsed
    assert "800 more files" in rr.summary_md


def test_a_forked_worker_gives_the_same_review_as_one_process(
    rb: RepoBuilder, tmp_path: Path
) -> None:
    files: dict[str, str | bytes | None] = {f"pkg{i // 50}/m{i}.py": _module(i) for i in range(300)}
    files["data.bin"] = b"\x00\x01"
    files["gone.py"] = _module(999)
    base = rb.commit(files)
    change: dict[str, str | bytes | None] = {
        k: str(v) + "\nVALUE = 1\n" for k, v in files.items() if k.startswith("pkg")
    }
    change["pkg0/m1.py"] = _module(1) + f"\nKEY = '{AWS}'\n"
    change["pkg0/m2.py"] = _module(2) + "\ndef broken(:\n    pass\n"
    change["pkg0/m3.py"] = _module(3).replace("return x + 3", "return (x + 3)")  # formatting
    change["gone.py"] = None
    change["data.bin"] = b"\x00\x02"
    change["yarn.lock"] = "lock\n"
    rb.commit(change, branch="feature", parents=[base])
    runs = {
        workers: run_review(
            rb.path,
            "main",
            "feature",
            GatebotConfig(),
            tmp_path / f"c{workers}",
            None,
            workers=workers,
        ).verdict
        for workers in (1, 2, None)  # None: automatic, two processes for 300 files
    }
    one = runs[1]
    assert one.verdict == "fail" and one.metrics.files_total == 303
    by_path = {f.path: f for f in one.files}
    assert [f.category for f in by_path["pkg0/m1.py"].findings] == ["secret"]
    assert [f.category for f in by_path["pkg0/m2.py"].findings] == ["syntax"]
    assert by_path["pkg0/m3.py"].reason == "formatting-only change (equal Python AST)"
    for other in (runs[2], runs[None]):
        assert other.files == one.files
        assert other.verdict == one.verdict and other.needs_human == one.needs_human


# -- the model path, against the loopback Gemini server -------------------------------------


def test_first_review_rerun_repush_rebase(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    """The runbook's scenarios: first review, a re-run (0 calls), a re-push changing one file
    (exactly that file re-reviewed), a rebase onto a newer main (0 calls)."""
    cfg = _cfg()
    cache = tmp_path / "cache"
    base = rb.commit({f"src/m{i}.py": _module(i) for i in range(20)} | {"README.md": "r\n"})
    changes = {f"src/m{i}.py": _module(i, "\ny = 2\n") for i in range(20)}
    changes["src/m3.py"] = _module(3, "\nz = eval(data)  # FIXME-SECURITY\n")
    head = rb.commit(changes, branch="feature", parents=[base])

    first = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    v = first.verdict
    assert v.provider == "gemini" and not v.degraded
    assert v.metrics.files_reviewed == 20 and v.metrics.files_cached == 0
    assert 1 <= v.metrics.api_calls < 20 == v.metrics.baseline_api_calls
    assert v.metrics.files_per_call >= 5
    assert v.metrics.input_tokens > 0 and v.metrics.cost_usd > 0
    assert v.metrics.cost_reduction_rate > 0
    m3 = _files(first)["src/m3.py"]
    assert m3.model and any(f.source == "model" and f.line == 7 and f.in_diff for f in m3.findings)
    assert v.verdict == "fail"  # the fake reports eval( as high

    gemini_server.reset_stats()
    rerun = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.generate_calls == 0
    assert rerun.verdict.metrics.files_cached == 20 and rerun.verdict.metrics.cache_hit_rate == 1
    assert rerun.verdict.verdict == "fail"  # cached model findings still count
    assert any(f.source == "model" for f in _files(rerun)["src/m3.py"].findings)

    repush = rb.commit({"src/m5.py": _module(5, "\ny = 3\n")}, branch="feature")
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", repush, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.paths_asked() == ["src/m5.py"]
    assert rr.verdict.metrics.files_reviewed == 1 and rr.verdict.metrics.files_cached == 19

    newer_main = rb.commit({"README.md": "newer\n", "docs/x.md": "x\n"})
    rebased = rb.commit(
        changes | {"src/m5.py": _module(5, "\ny = 3\n")}, branch="rebased", parents=[newer_main]
    )
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", rebased, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.generate_calls == 0
    assert rr.verdict.metrics.files_cached == 20 and rr.verdict.metrics.api_calls == 0


def test_provider_down_fails_closed_and_names_the_files(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    cache = tmp_path / "cache"
    base = rb.commit({"a.py": _module(1), "b.py": _module(2)})
    head = rb.commit(
        {"a.py": _module(1, "\nq = 1\n"), "b.py": _module(2, "\nq = 2\n")},
        branch="feature",
        parents=[base],
    )
    gemini_server.fail("503", times=-1)
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    v = rr.verdict
    assert (v.verdict, v.conclusion) == ("fail", "failure") and v.degraded
    assert v.provider == "gemini+local"
    assert v.uncovered == ["a.py", "b.py"]
    assert all(not f.covered and f.status == "reviewed" for f in v.files)
    assert {f.not_reviewed.cause for f in v.files if f.not_reviewed} == {"provider"}
    assert "not reviewed: 2 files, provider" in v.reasons[0]
    assert "### Not reviewed (2)" in rr.summary_md

    # Fail-open for outages is the base config's explicit choice: then neutral.
    opened = cfg.model_copy(
        update={"review": cfg.review.model_copy(update={"unreviewed": "neutral"})}
    )
    rr = run_review(rb.path, "main", head, opened, cache, _gemini(opened))
    assert (rr.verdict.verdict, rr.verdict.conclusion) == ("neutral", "neutral")

    # Nothing was cached from the failure: once the provider is back, both are reviewed.
    gemini_server.clear_faults()
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert rr.verdict.verdict == "pass" and not rr.verdict.degraded
    assert sorted(gemini_server.stats.paths_asked()) == ["a.py", "b.py"]


def test_deterministic_finding_still_fails_when_provider_down(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    base = rb.commit({"a.py": "x = 1\n"})
    head = rb.commit({"a.py": "x = 1\n<<<<<<< HEAD\n"}, branch="feature", parents=[base])
    gemini_server.fail("500", times=-1)
    rr = run_review(rb.path, "main", head, cfg, tmp_path / "c", _gemini(cfg))
    assert rr.verdict.verdict == "fail" and rr.verdict.uncovered == ["a.py"]


def test_one_file_failing_leaves_the_others_cached(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    cache = tmp_path / "cache"
    base = rb.commit({"a.py": _module(1), "b.py": _module(2)})
    head = rb.commit(
        {"a.py": _module(1, "\nq = 1\n"), "b.py": _module(2, "\nq = 2\n")},
        branch="feature",
        parents=[base],
    )
    gemini_server.fail("omit_file", path="b.py", times=-1)
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert rr.verdict.uncovered == ["b.py"] and rr.verdict.verdict == "fail"
    gemini_server.clear_faults()
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.paths_asked() == ["b.py"]
    assert _files(rr)["a.py"].status == "cached" and rr.verdict.verdict == "pass"


def test_findings_outside_diff_and_on_unknown_paths(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    base = rb.commit({"a.py": _module(1)})
    head = rb.commit({"a.py": _module(1, "\nq = 1\n")}, branch="feature", parents=[base])
    gemini_server.fail("unknown_line")
    gemini_server.fail("unknown_path")
    rr = run_review(rb.path, "main", head, cfg, tmp_path / "c", _gemini(cfg))
    paths = {f.path for f in rr.verdict.files}
    assert paths == {"a.py"}
    outside = [f for f in _files(rr)["a.py"].findings if f.line == 99999]
    assert outside and not outside[0].in_diff
    assert all(f.path == "a.py" for fr in rr.verdict.files for f in fr.findings)
    assert rr.verdict.verdict == "pass"  # the unknown-path critical finding was dropped


def test_file_split_into_parts_is_cached_whole(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg(budget_tokens=2000)
    cache = tmp_path / "cache"
    old = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(400))
    new = old.replace("return x + ", "return x - ")
    base = rb.commit({"big.py": old, "small.py": "s = 1\n"})
    head = rb.commit({"big.py": new, "small.py": "s = 2\n"}, branch="feature", parents=[base])
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert rr.verdict.verdict == "pass" and not rr.verdict.uncovered
    assert gemini_server.stats.generate_calls >= 2
    assert gemini_server.stats.paths_asked().count("big.py") >= 2  # sent in parts
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.generate_calls == 0
    assert _files(rr)["big.py"].status == "cached"


def test_corrupt_cache_dir_is_a_miss_with_warning(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cache.db").write_bytes(b"\x00garbage" * 512)
    base = rb.commit({"a.py": _module(1)})
    head = rb.commit({"a.py": _module(1, "\nq = 1\n")}, branch="feature", parents=[base])
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert rr.verdict.verdict == "pass" and rr.verdict.metrics.files_reviewed == 1
    assert any("dropped" in w and "starting cold" in w for w in rr.warnings)
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.generate_calls == 0  # the fresh cache works again


def test_verdict_json_is_the_contract(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    base = rb.commit({"a.py": _module(1)})
    head = rb.commit({"a.py": _module(1, "\nq = 1\n")}, branch="feature", parents=[base])
    rr = run_review(rb.path, "main", head, cfg, tmp_path / "c", _gemini(cfg))
    write_outputs(rr, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "verdict.json").read_text())
    for key in (
        "schema_version",
        "verdict",
        "base_sha",
        "head_sha",
        "provider",
        "degraded",
        "files",
        "metrics",
    ):
        assert key in data
    for key in (
        "api_calls",
        "batches",
        "files_total",
        "files_reviewed",
        "files_cached",
        "files_skipped",
        "cache_hit_rate",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
        "baseline_api_calls",
        "baseline_cost_usd",
        "cost_reduction_rate",
        "files_per_call",
        "duration_s",
    ):
        assert key in data["metrics"]
    assert data["files"][0]["status"] in ("reviewed", "cached", "skipped")


@pytest.mark.parametrize("fault", ["429", "500", "truncated", "not_json", "malformed_file"])
def test_transient_faults_end_in_a_full_review(
    fault: str, rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    cache = tmp_path / "cache"
    base = rb.commit({"a.py": _module(1), "b.py": _module(2)})
    head = rb.commit(
        {"a.py": _module(1, "\nq = eval(s)\n"), "b.py": _module(2, "\nq = 2\n")},
        branch="feature",
        parents=[base],
    )
    gemini_server.fail(fault, times=1)
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    v = rr.verdict
    assert not v.degraded and v.uncovered == [] and v.provider == "gemini"
    assert v.verdict == "fail"  # the model's eval( finding survived the retry
    assert any(f.fault == fault for f in gemini_server.stats.calls)
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", head, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.generate_calls == 0 and rr.verdict.metrics.files_cached == 2


def test_outage_loses_nothing_from_the_cache(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cfg = _cfg()
    cache = tmp_path / "cache"
    base = rb.commit({"a.py": _module(1), "b.py": _module(2)})
    first = rb.commit({"a.py": _module(1, "\nq = 1\n")}, branch="feature", parents=[base])
    assert run_review(rb.path, "main", first, cfg, cache, _gemini(cfg)).verdict.verdict == "pass"

    second = rb.commit({"b.py": _module(2, "\nq = 2\n")}, branch="feature")
    gemini_server.fail("503", times=-1)
    rr = run_review(rb.path, "main", second, cfg, cache, _gemini(cfg))
    assert _files(rr)["a.py"].status == "cached"  # served from cache during the outage
    assert rr.verdict.uncovered == ["b.py"] and rr.verdict.verdict == "fail"

    gemini_server.clear_faults()
    gemini_server.reset_stats()
    rr = run_review(rb.path, "main", second, cfg, cache, _gemini(cfg))
    assert gemini_server.stats.paths_asked() == ["b.py"]
    assert rr.verdict.verdict == "pass" and rr.verdict.metrics.files_cached == 1


def test_file_over_max_file_bytes_is_skipped_unread_and_never_sent(
    rb: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    # Over the limit: no hunks, no line checks, no model call, not reviewed; the added one keeps
    # its large-file finding, and its secret is found by the streamed scan of the whole blob.
    cfg = _cfg(max_file_bytes=1000, large_file_bytes=2000)
    huge = "x = 1\n" * 400 + f"key = '{AWS}'\n"
    base = rb.commit({"a.py": _module(1), "grown.txt": "small\n"})
    head = rb.commit(
        {"a.py": _module(1, "\nq = 1\n"), "data/huge.txt": huge, "grown.txt": "y\n" * 600},
        branch="feature",
        parents=[base],
    )
    rr = run_review(rb.path, "main", head, cfg, tmp_path / "c", _gemini(cfg))
    files = _files(rr)
    assert gemini_server.stats.paths_asked() == ["a.py"]
    added = files["data/huge.txt"]
    assert added.status == "skipped" and not added.covered
    assert added.reason == (
        f"too large to review: {len(huge):,} bytes > review.max_file_bytes (1,000 bytes)"
    )
    assert sorted(f.category for f in added.findings) == ["large-file", "secret"]
    large = next(f for f in added.findings if f.category == "large-file")
    assert "very large added file" in large.message
    secret = next(f for f in added.findings if f.category == "secret")
    assert secret.line == 401 and secret.severity == "critical"
    grown = files["grown.txt"]
    assert grown.status == "skipped" and not grown.covered and grown.reason is not None
    assert grown.reason.startswith("too large to review: 1,200 bytes") and grown.findings == []
    # Unread is not reviewed: the gate fails closed on the PR's own content, named as such.
    assert files["a.py"].status == "reviewed" and rr.verdict.verdict == "fail"
    assert {f.not_reviewed.cause for f in (added, grown) if f.not_reviewed} == {"content"}
    assert rr.verdict.uncovered == ["data/huge.txt", "grown.txt"]
