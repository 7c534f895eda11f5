"""OpenMetrics parses with the Prometheus client's parser; Mermaid, JSON and markdown are sound."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as prom_parse

from bot.config.metrics import AlertsConfig, MetricsConfig
from bot.config.model import GatebotConfig
from bot.metrics import openmetrics, render, report
from bot.metrics.alerts import ALERT_IDS
from bot.metrics.history import history_path, load_history, record_deploy, record_review
from bot.metrics.records import ReviewEntry
from tests.metrics.helpers import at, verdict

CFG = MetricsConfig()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    runs = [
        verdict(reviewed=40, cached=10, calls=5, cost=0.05, baseline_cost=0.5, duration=8.0),
        verdict(reviewed=1, cached=49, calls=1, cost=0.001, baseline_cost=0.5, duration=2.0),
        verdict(reviewed=1, cached=49, calls=1, cost=0.001, baseline_cost=0.5, degraded=True),
    ]
    for i, v in enumerate(runs):
        record_review(tmp_path, v, CFG, now=at(i), env={"GITHUB_RUN_ID": str(100 + i)})
    record_deploy(
        tmp_path,
        {"kind": "audit", "target": "inf", "ok": False, "duration_s": 2.0,
         "gtw_rtt_p50_ms": 61.0, "gtw_rtt_max_ms": 75.0},
        CFG,
        now=at(10),
        env={},
    )  # fmt: skip
    return tmp_path


def _samples(families: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in families  # type: ignore[attr-defined]
        for s in fam.samples
    }


def test_openmetrics_parses_and_carries_the_figures(cache: Path) -> None:
    rep = report.load(cache, CFG.alerts)
    text = openmetrics.exposition(openmetrics.build_registry(rep.entries, rep.alerts))
    assert text.endswith("# EOF\n")
    families = list(om_parse(text))
    assert all(f.type == "gauge" for f in families)
    samples = _samples(families)
    r = rep.figures.review
    assert samples[("gatebot_review_api_calls", ())] == 7
    assert samples[("gatebot_review_cost_usd", ())] == pytest.approx(0.052)
    assert samples[("gatebot_review_cost_reduction_ratio", ())] == pytest.approx(1 - 0.052 / 1.5)
    assert samples[("gatebot_review_cache_hit_ratio", ())] == pytest.approx(108 / 150)
    assert samples[("gatebot_review_tokens", (("type", "input"),))] == 3000
    assert samples[("gatebot_review_degraded_runs", ())] == r.degraded_runs == 1
    assert samples[("gatebot_gtw_rtt_p50_seconds", ())] == pytest.approx(0.061)
    assert samples[("gatebot_window_runs", (("kind", "review"),))] == 3
    assert samples[("gatebot_last_run_timestamp_seconds", ())] == at(10).timestamp()
    firing = {k[1][0][1]: v for k, v in samples.items() if k[0] == "gatebot_alert_firing"}
    assert set(firing) == set(ALERT_IDS)
    assert {k for k, v in firing.items() if v == 1} == {
        "degraded_reviewer",
        "audit_failing",
        "gtw_rtt_over_budget",
    }
    # a figure without data is absent, not zero
    assert ("gatebot_deploy_duration_p50_seconds", ()) not in samples


def test_textfile_is_prometheus_text_written_atomically(cache: Path, tmp_path: Path) -> None:
    prom = tmp_path / "node" / "gatebot.prom"
    entries = load_history(history_path(cache)).entries
    openmetrics.write_textfile(prom, entries, CFG)
    samples = _samples(prom_parse(prom.read_text()))
    assert samples[("gatebot_review_api_calls", ())] == 7
    assert samples[("gatebot_alert_firing", (("alert", "audit_failing"),))] == 1
    assert [p.name for p in prom.parent.iterdir()] == ["gatebot.prom"]


def test_textfile_path_must_end_in_prom() -> None:
    with pytest.raises(ValueError, match=r"\.prom"):
        MetricsConfig(textfile="/var/lib/node_exporter/gatebot.txt")


MERMAID = re.compile(r"```mermaid\n(.*?)\n```", re.S)


def _check_xychart(block: str) -> dict[str, list[str] | list[float]]:
    """Structural check of one xychart-beta block; returns its axis labels and series."""
    lines = [line.strip() for line in block.splitlines()]
    assert lines[0] == "xychart-beta"
    assert re.fullmatch(r'title "[^"%]+"', lines[1])
    x = re.fullmatch(r"x-axis \[(.*)\]", lines[2])
    assert x, lines[2]
    labels = re.findall(r'"([^"]*)"', x.group(1))
    assert x.group(1) == ", ".join(f'"{label}"' for label in labels)
    assert len(set(labels)) == len(labels)
    y = re.fullmatch(r'y-axis "[^"]+" (-?[\d.]+) --> (-?[\d.]+)', lines[3])
    assert y and float(y.group(1)) < float(y.group(2)), lines[3]
    series: dict[str, list[str] | list[float]] = {"labels": labels}
    for line in lines[4:]:
        m = re.fullmatch(r"(bar|line) \[(.*)\]", line)
        assert m, line
        values = [v.strip() for v in m.group(2).split(",")]
        assert all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values), values
        assert len(values) == len(labels)
        assert all(float(v) <= float(y.group(2)) for v in values)
        series[m.group(1)] = [float(v) for v in values]
    assert {"bar", "line"} <= set(series)
    return series


def test_mermaid_trend_charts_are_well_formed(cache: Path) -> None:
    rep = report.load(cache, CFG.alerts)
    blocks = MERMAID.findall(render.mermaid_charts(rep.entries))
    assert len(blocks) == 2
    cost, rates = (_check_xychart(b) for b in blocks)
    assert cost["bar"] == [0.5, 0.5, 0.5]
    assert cost["line"] == [0.05, 0.001, 0.001]
    assert rates["bar"] == [90.0, 99.8, 99.8]
    assert rates["line"] == [20.0, 98.0, 98.0]
    pairs = zip(cost["line"], cost["bar"], strict=True)
    assert rates["bar"] == [round(100 * (1 - float(c) / float(b)), 1) for c, b in pairs]


def test_mermaid_labels_stay_distinct_and_charts_stay_bounded(tmp_path: Path) -> None:
    v = verdict(reviewed=1, cached=1, calls=1, cost=0.0000123, baseline_cost=0.0001)
    for i in range(30):
        record_review(tmp_path, v, CFG, now=at(i / 10), env={})  # many runs in one minute
    entries = load_history(history_path(tmp_path)).entries
    blocks = MERMAID.findall(render.mermaid_charts(entries))
    cost = _check_xychart(blocks[0])
    assert len(cost["labels"]) == render.CHART_RUNS
    assert cost["line"][0] == 0.000012  # plain decimals, never 1.23e-05


def test_json_report_round_trips(cache: Path) -> None:
    rep = report.load(cache, CFG.alerts)
    data = json.loads(render.render_json(rep))
    assert data["summary"]["review"]["api_calls"] == 7
    assert data["summary"]["errors"] == 0
    assert [r["run_id"] for r in data["runs"]] == ["100", "101", "102", None]
    assert [a["id"] for a in data["alerts"]] == [a.id for a in rep.alerts]
    assert data["records"] == 4 and data["problems"] == []


def test_table_and_markdown_show_figures_and_alerts(cache: Path) -> None:
    rep = report.load(cache, CFG.alerts)
    table = render.render_table(rep)
    assert "cache hit rate" in table and "72.0%" in table
    assert "[audit_failing]" in table
    md = render.render_markdown(rep)
    assert md.startswith("## gatebot metrics")
    assert "> [!WARNING]" in md and "`gtw_rtt_over_budget`" in md
    assert "| cost reduction | 96.5% |" in md
    assert len(MERMAID.findall(md)) == 2


def test_summary_block_puts_alerts_before_the_chart(cache: Path) -> None:
    block = render.summary_block(cache, GatebotConfig())
    assert block.index("gatebot alerts") < block.index("```mermaid")
    assert render.summary_block(cache, CFG) == block
    quiet = MetricsConfig(alerts=AlertsConfig(max_degraded_runs=5, gtw_rtt_budget_ms=100))
    only_audit = render.summary_block(cache, quiet)
    assert "audit_failing" in only_audit and "degraded_reviewer" not in only_audit


def test_summary_block_is_empty_without_history(tmp_path: Path) -> None:
    assert render.summary_block(tmp_path / "no-cache", GatebotConfig()) == ""


def test_review_entries_keep_pipeline_metrics_verbatim(cache: Path) -> None:
    entries = load_history(history_path(cache)).entries
    assert isinstance(entries[0], ReviewEntry)
    assert entries[0].metrics.files_reviewed == 40


def test_table_shows_error_text_verbatim_not_as_markup(tmp_path: Path) -> None:
    message = "[Errno 111] Connection refused [/bold] by [red]peer"
    record_deploy(
        tmp_path,
        {"kind": "deploy", "target": "inf", "ok": False, "error": message, "exit_code": 3},
        CFG,
        now=at(0),
        env={},
    )
    table = render.render_table(report.load(tmp_path, CFG.alerts), width=400)
    assert message in table
    assert "[infrastructure_error]" in table and "[deploy_failing]" in table
