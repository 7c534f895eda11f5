"""The run history file: append, read back, skip damage, stay bounded, refresh the side outputs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from bot.config.metrics import MetricsConfig
from bot.metrics.history import (
    DeployRecord,
    history_path,
    load_history,
    record_deploy,
    record_review,
)
from bot.metrics.records import DeployEntry, ReviewEntry
from tests.metrics.helpers import at, verdict

CFG = MetricsConfig()


def _review(cache: Path, minute: float, cfg: MetricsConfig = CFG) -> ReviewEntry:
    v = verdict(reviewed=4, cached=2, calls=1, cost=0.002, baseline_cost=0.03)
    return record_review(cache, v, cfg, now=at(minute), env={})


def test_review_record_round_trips_with_run_id(tmp_path: Path) -> None:
    v = verdict(reviewed=5, cached=3, skipped=2, calls=2, cost=0.004, baseline_cost=0.05)
    record_review(tmp_path, v, CFG, now=at(0), env={"GITHUB_RUN_ID": "987654"})
    record_review(tmp_path, v, CFG, now=at(1), env={})

    lines = history_path(tmp_path).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["kind"] == "review"
    assert first["run_id"] == "987654"
    assert first["ts"] == "2026-11-01T08:00:00Z"
    assert first["metrics"] == v.metrics.model_dump()
    assert json.loads(lines[1])["run_id"] is None

    history = load_history(history_path(tmp_path))
    assert history.problems == []
    assert [type(e) for e in history.entries] == [ReviewEntry, ReviewEntry]
    assert history.entries[0].metrics == v.metrics
    assert history.entries[0].provider == "gemini"


def test_run_id_comes_from_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    entry = record_review(
        tmp_path, verdict(reviewed=1, cached=0, calls=1, cost=0.1, baseline_cost=0.1), CFG
    )
    assert entry.run_id == "4242"
    assert load_history(history_path(tmp_path)).entries[0].run_id == "4242"


def test_deploy_record_accepts_dict_or_model(tmp_path: Path) -> None:
    as_dict = {
        "kind": "deploy",
        "target": "inf",
        "ref": "main",
        "sha": "c" * 40,
        "release": "20261101T080000-cccccccc",
        "ok": True,
        "duration_s": 4.5,
        "bytes_sent": 1024,
        "files_sent": 3,
        "audit_duration_s": 1.2,
        "gtw_rtt_p50_ms": 3.1,
        "gtw_rtt_max_ms": 7.9,
    }
    record_deploy(tmp_path, as_dict, CFG, now=at(0), env={})
    model = DeployRecord(kind="audit", target="inf", ok=False, error="ssh: connection refused")
    record_deploy(tmp_path, model, CFG, now=at(1), env={})

    entries = load_history(history_path(tmp_path)).entries
    assert [type(e) for e in entries] == [DeployEntry, DeployEntry]
    first, second = entries
    assert isinstance(first, DeployEntry) and isinstance(second, DeployEntry)
    assert first.model_dump(include=set(as_dict)) == as_dict
    assert (second.kind, second.ok, second.error) == ("audit", False, "ssh: connection refused")


def test_bad_deploy_record_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        record_deploy(tmp_path, {"kind": "deploy", "target": "inf", "ok": True, "bytez": 1}, CFG)
    assert "bytez" in str(err.value)
    with pytest.raises(ValidationError) as err:
        record_deploy(tmp_path, {"kind": "upgrade", "target": "inf", "ok": True}, CFG)
    assert "kind" in str(err.value)
    assert not history_path(tmp_path).exists()


def test_naive_timestamp_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time zone"):
        record_review(
            tmp_path,
            verdict(reviewed=1, cached=0, calls=1, cost=0.1, baseline_cost=0.1),
            CFG,
            now=datetime(2026, 11, 1, 8, 0),
        )


def test_corrupt_and_truncated_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    _review(tmp_path, 0)
    path = history_path(tmp_path)
    good = path.read_text()
    damaged = (
        good
        + "this is not json\n"
        + '{"v":1,"ts":"2026-11-01T08:05:00Z","kind":"review","verdict":"pass"}\n'  # no metrics
        + '{"v":1,"ts":"2026-11-01T08:06:00Z","kind":"teleport","target":"x","ok":true}\n'
        + good.replace("08:00:00", "08:07:00")
        + good[: len(good) // 2]  # a writer killed mid-line: no newline at the end
    )
    path.write_text(damaged)

    # The next append must not be glued onto the broken line.
    _review(tmp_path, 10)
    history = load_history(path)

    assert [e.ts for e in history.entries] == [at(0), at(7), at(10)]
    assert len(history.problems) == 4
    assert [p.split(":")[1] for p in history.problems] == ["2", "3", "4", "6"]
    assert all(str(path) in p and "skipped" in p for p in history.problems)
    assert "metrics" in history.problems[1]
    assert "kind" in history.problems[2] or "teleport" in history.problems[2]


def test_undecodable_bytes_are_a_skipped_line(tmp_path: Path) -> None:
    _review(tmp_path, 0)
    path = history_path(tmp_path)
    with path.open("ab") as f:
        f.write(b"\xff\xfe\x00garbage\n")
    _review(tmp_path, 1)
    history = load_history(path)
    assert len(history.entries) == 2
    assert len(history.problems) == 1 and ":2:" in history.problems[0]


def test_missing_history_is_empty_without_warnings(tmp_path: Path) -> None:
    history = load_history(history_path(tmp_path / "nowhere"))
    assert history.entries == [] and history.problems == []


def test_history_stays_within_its_bound_keeping_the_newest(tmp_path: Path) -> None:
    cfg = MetricsConfig(history_max_records=10)
    for minute in range(25):
        _review(tmp_path, minute, cfg=cfg)
        lines = history_path(tmp_path).read_bytes().splitlines()
        assert len(lines) <= 10
    entries = load_history(history_path(tmp_path)).entries
    assert [e.ts for e in entries] == [at(m) for m in range(15, 25)]
    # No temporary files are left behind by the rewrites.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]


def test_record_refreshes_textfile_and_run_log(tmp_path: Path) -> None:
    prom = tmp_path / "textfile" / "gatebot.prom"
    log = tmp_path / "logs" / "unified_review_optimizer.log"
    cfg = MetricsConfig(textfile=str(prom), run_log=str(log))
    v = verdict(reviewed=3, cached=47, calls=3, cost=0.003, baseline_cost=0.05)
    record_review(tmp_path / "cache", v, cfg, now=at(0), env={})
    record_deploy(
        tmp_path / "cache",
        {"kind": "deploy", "target": "inf", "ok": True, "bytes_sent": 2048},
        cfg,
        now=at(1),
        env={},
    )

    assert log.read_text().splitlines() == [
        "2026-11-01T08:00:00Z api_calls: 3, cached_files: 47, cache_hit_rate: 0.94, "
        "cost_reduction_rate: 0.94"
    ]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(prom.read_text())
        for s in fam.samples
    }
    assert samples[("gatebot_window_runs", (("kind", "review"),))] == 1
    assert samples[("gatebot_window_runs", (("kind", "deploy"),))] == 1
    assert samples[("gatebot_deploy_sent_bytes", ())] == 2048
    assert samples[("gatebot_review_cache_hit_ratio", ())] == pytest.approx(47 / 50)


def test_unwritable_history_raises_oserror_for_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(OSError):
        _review(blocker, 0)
