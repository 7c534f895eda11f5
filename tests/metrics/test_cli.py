"""`gatebot metrics` as a process: formats, --since, --check exit codes, Actions output, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from bot.config.metrics import MetricsConfig
from bot.metrics.history import history_path, record_deploy, record_review
from tests.metrics.conftest import Done
from tests.metrics.helpers import verdict

CFG = MetricsConfig()
NOW = datetime.now(timezone.utc)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """Three good reviews ten days ago, two recent ones with a degraded run, a recent deploy."""
    good = verdict(reviewed=2, cached=8, calls=1, cost=0.001, baseline_cost=0.1)
    for i in range(3):
        record_review(tmp_path, good, CFG, now=NOW - timedelta(days=10, minutes=i), env={})
    record_review(tmp_path, good, CFG, now=NOW - timedelta(hours=2), env={})
    degraded = verdict(reviewed=2, cached=8, calls=0, cost=0, baseline_cost=0.1, degraded=True)
    record_review(tmp_path, degraded, CFG, now=NOW - timedelta(hours=1), env={})
    record_deploy(
        tmp_path,
        {"kind": "deploy", "target": "inf", "ok": True, "bytes_sent": 4096, "duration_s": 3.0},
        CFG,
        now=NOW - timedelta(minutes=30),
        env={},
    )
    return tmp_path


def test_json_since_limits_the_window(gatebot: Callable[..., Done], cache: Path) -> None:
    all_runs = json.loads(gatebot("--cache-dir", str(cache), "--format", "json").stdout)
    recent = json.loads(
        gatebot("--cache-dir", str(cache), "--format", "json", "--since", "3d").stdout
    )
    assert all_runs["summary"]["review"]["runs"] == 5
    assert recent["summary"]["review"]["runs"] == 2
    assert recent["summary"]["deploy"]["bytes_sent"] == 4096
    iso = (NOW - timedelta(days=11)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        json.loads(gatebot("--cache-dir", str(cache), "--format", "json", "--since", iso).stdout)[
            "summary"
        ]["runs"]
        == 6
    )


def test_cache_dir_comes_from_the_environment(gatebot: Callable[..., Done], cache: Path) -> None:
    done = gatebot("--format", "json", env={"GATEBOT_CACHE_DIR": str(cache)})
    assert json.loads(done.stdout)["history"] == str(history_path(cache))


def test_check_exits_1_only_when_an_alert_fires(
    gatebot: Callable[..., Done], cache: Path, tmp_path: Path
) -> None:
    done = gatebot("--cache-dir", str(cache), "--check")
    assert done.returncode == 1
    assert "ALERT degraded_reviewer" in done.stderr
    assert "gatebot: 1 alert(s) firing" in done.stderr
    calm = gatebot("--cache-dir", str(cache), "--check", "--since", "45m")  # only the deploy
    assert calm.returncode == 0, calm.stderr
    assert "no alerts firing" in calm.stderr
    cfg = tmp_path / "gatebot.yml"
    cfg.write_text("metrics:\n  alerts:\n    max_degraded_runs: 1\n")
    tolerant = gatebot("--cache-dir", str(cache), "--check", "--config", str(cfg))
    assert tolerant.returncode == 0, tolerant.stderr


def test_in_actions_alerts_are_warning_commands_and_markdown_stays_clean(
    gatebot: Callable[..., Done], cache: Path
) -> None:
    env = {"GITHUB_ACTIONS": "true"}
    md = gatebot("--cache-dir", str(cache), "--format", "markdown", env=env)
    assert md.returncode == 0
    assert md.stdout.startswith("## gatebot metrics") and "::" not in md.stdout
    assert "`degraded_reviewer`" in md.stdout and "```mermaid" in md.stdout
    checked = gatebot("--cache-dir", str(cache), "--check", env=env)
    assert checked.returncode == 1
    warnings = [line for line in checked.stdout.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 1
    assert warnings[0].startswith("::warning title=gatebot%3A degraded_reviewer::")


def test_openmetrics_format_and_textfile(
    gatebot: Callable[..., Done], cache: Path, tmp_path: Path
) -> None:
    prom = tmp_path / "collector" / "gatebot.prom"
    done = gatebot(
        "--cache-dir", str(cache), "--format", "openmetrics", "--textfile", str(prom)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = {f.name for f in text_string_to_metric_families(done.stdout)}
    assert {"gatebot_review_api_calls", "gatebot_alert_firing"} <= names
    assert "gatebot_deploy_sent_bytes 4096.0" in prom.read_text()


def test_missing_history_is_named_and_passes(gatebot: Callable[..., Done], tmp_path: Path) -> None:
    done = gatebot("--cache-dir", str(tmp_path / "empty"), "--check")
    assert done.returncode == 0
    assert f"no run history at {tmp_path / 'empty' / 'history.jsonl'}" in done.stderr


def test_damaged_history_warns_and_still_counts(gatebot: Callable[..., Done], cache: Path) -> None:
    with history_path(cache).open("a") as f:
        f.write('{"v": 1, "kind": "review", "ts": "not a time"\n')
    done = gatebot("--cache-dir", str(cache), "--format", "json")
    assert done.returncode == 0
    assert "history.jsonl:7: skipped unreadable record" in done.stderr
    assert json.loads(done.stdout)["summary"]["runs"] == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "fortnight"], "--since: 'fortnight'"),
        (["--textfile", "out.txt"], "only reads files ending in .prom"),
        (["--format", "xml"], "xml"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    gatebot: Callable[..., Done], cache: Path, args: list[str], message: str
) -> None:
    done = gatebot("--cache-dir", str(cache), *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_config_errors_name_the_key(
    gatebot: Callable[..., Done], cache: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "gatebot.yml"
    cfg.write_text("metrics:\n  alerts:\n    min_cost_reduction: 1.5\n    hit_rat_min: 0.3\n")
    done = gatebot("--cache-dir", str(cache), "--config", str(cfg))
    assert done.returncode == 2
    assert "metrics.alerts.min_cost_reduction" in done.stderr
    assert "metrics.alerts.hit_rat_min: unknown key" in done.stderr
