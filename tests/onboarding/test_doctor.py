"""`gatebot doctor` against real loopback servers: fake Gemini and GitHub, OpenSSH sshd, a GTW.

First everything green, then each failure produced for real at the wire, each expected to show
its fail line and fix.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.review.cost import today_utc
from bot.review.providers.resolve import plan as resolve_plan
from tests.fakes.gemini import FakeGemini, FakeModel
from tests.fakes.github import TOKEN, FakeGitHub
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import SshServer, free_port
from tests.gitrepo import RepoBuilder
from tests.onboarding.helpers import Run, gatebot

HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Setup:
    repo: Path
    config: Path
    gemini: FakeGemini
    github: FakeGitHub
    sshd: SshServer
    gtw: GtwServer

    def edit(self, change: Any) -> None:
        data = yaml.safe_load(self.config.read_text())
        change(data)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))


def _check(report: dict[str, Any], cid: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["id"] == cid]
    assert found, f"no check {cid} in {[c['id'] for c in report['checks']]}"
    return found[0]


def _doctor(capsys: pytest.CaptureFixture[str], setup: Setup, *extra: str) -> tuple[Run, Any]:
    run = gatebot(capsys, "doctor", "--repo", str(setup.repo), "--json", *extra)
    return run, json.loads(run.out)


@pytest.fixture
def setup(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gemini_server: FakeGemini,
    github_server: FakeGitHub,
    sshd: SshServer,
    gtw: GtwServer,
) -> Setup:
    repo = RepoBuilder(tmp_path / "repo").path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = gatebot(
        capsys,
        "init",
        "--repo",
        str(repo),
        "--deploy-target",
        "inf",
        "--host",
        "127.0.0.1",
        "--port",
        str(sshd.port),
        "--user",
        sshd.user,
        "--path",
        str(tmp_path / "inf" / "app"),
    )
    assert run.code == 0, run.err
    config = repo / ".github" / "gatebot.yml"
    s = Setup(repo, config, gemini_server, github_server, sshd, gtw)

    def wire(data: dict[str, Any]) -> None:
        # The host is this machine: its interpreter with pyzmq runs the GTW probe.
        data["deploy"]["targets"]["inf"]["python"] = sys.executable
        data["audit"]["gtw"] = {"endpoint": gtw.endpoint, "timeout_ms": 300, "retries": 1}

    s.edit(wire)
    # The secrets a workflow would pass, here from the loopback sshd's keys.
    monkeypatch.setenv("GATEBOT_SSH_KEY", sshd.client_key.read_text())
    monkeypatch.setenv("GATEBOT_KNOWN_HOSTS", sshd.known_hosts.read_text())
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_API_URL", github_server.url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/trading")
    monkeypatch.setenv("GITHUB_SHA", HEAD_SHA)
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(tmp_path / "cache"))
    return s


def test_all_green(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    start = time.monotonic()
    run, report = _doctor(capsys, setup)
    took = time.monotonic() - start
    assert run.code == 0, run.out
    assert report["ok"] is True
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    expected = [
        "config",
        "gemini.key",
        "gemini.api",
        "gemini.models",
        "github.token",
        "github.checks",
        "cache",
        "target.inf.network",
        "target.inf.ssh",
        "target.inf.host",
        "target.inf.path",
        "target.inf.gtw",
    ]
    assert {k: statuses.get(k) for k in expected} == dict.fromkeys(expected, "pass")
    assert took < 15, f"doctor took {took:.1f}s"
    # The probes really went over the wire.
    assert setup.gemini.stats.count_tokens_calls >= 1
    assert setup.github.runs_for(HEAD_SHA, "gatebot / doctor")[0].conclusion == "neutral"
    assert setup.gtw.requests >= 1
    # No secret leaks into the report.
    for secret in (setup.gemini.api_key, TOKEN, setup.sshd.client_key.read_text().split("\n")[1]):
        assert secret not in run.out and secret not in run.err


def test_text_output_lists_every_check(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    run = gatebot(capsys, "doctor", "--repo", str(setup.repo))
    assert run.code == 0, run.out
    lines = run.out.splitlines()
    assert sum(1 for ln in lines if ln.startswith("PASS")) == 12
    assert "FAIL" not in run.out
    assert lines[-1].startswith("all good: 12 passed")


def test_bad_config_key(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    setup.edit(lambda d: d["review"].update({"blocking_severty": "high"}))
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "config")
    assert check["status"] == "fail"
    assert "review.blocking_severty: unknown key" in check["detail"]
    assert "fix or remove the key" in check["fix"]
    # The rest still runs on the defaults, so one run shows every problem.
    assert _check(report, "gemini.api")["status"] == "pass"


def test_no_gemini_key(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "gemini.key")
    assert check["status"] == "fail"
    assert "GEMINI_API_KEY" in check["detail"]
    assert "export GEMINI_API_KEY" in check["fix"]
    assert _check(report, "gemini.api")["status"] == "skip"
    assert setup.gemini.stats.count_tokens_calls == 0


def test_rejected_gemini_key(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key-value-1234")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "gemini.api")
    assert check["status"] == "fail"
    assert "rejected the API key" in check["detail"]
    assert "wrong-key-value-1234" not in run.out


def test_gemini_api_down(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    setup.gemini.stop()
    start = time.monotonic()
    run, report = _doctor(capsys, setup, "--timeout", "2")
    assert time.monotonic() - start < 15
    assert run.code == 1
    check = _check(report, "gemini.api")
    assert check["status"] == "fail"
    assert "unreachable" in check["detail"]
    assert "network" in check["fix"]
    assert _check(report, "gemini.models")["status"] == "skip"


def test_unknown_model(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    setup.edit(lambda d: d["review"]["models"].update({"deep": "gemini-0.1-imaginary"}))
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "gemini.models")
    assert check["status"] == "fail"
    assert "review.models.deep = gemini-0.1-imaginary" in check["detail"]
    assert "family" in check["fix"]
    assert _check(report, "gemini.api")["status"] == "pass"


# (tier, configured id, does the API still list it, what the resolver picks instead, why)
OUTDATED = [
    ("standard", "gemini-2.5-flash", False, "gemini-3.8-flash", "shut down on 2026-12-01"),
    # a listing that still names a model past its shutdown date: the date decides
    ("standard", "gemini-2.5-flash", True, "gemini-3.8-flash", "shut down on 2026-12-01"),
    ("deep", "gemini-3-pro-preview", False, "gemini-3.1-pro-preview", "shut down on 2026-03-09"),
    # listed and working, with an announced shutdown ("will be shut down" until the day)
    ("lite", "gemini-3.1-flash-lite", True, "gemini-3.5-flash-lite", "shut down on 2027-05-07"),
    # not in gatebot's table and not listed: its family's best listed model
    ("standard", "gemini-3.9-flash", False, "gemini-3.8-flash", "not listed by the API"),
]


@pytest.mark.parametrize(
    ("tier", "configured", "listed", "picked", "why"),
    OUTDATED,
    ids=["retired", "retired-but-listed", "retired-preview", "announced", "absent"],
)
def test_an_outdated_model_is_named_with_the_replacement_the_review_would_use(
    capsys: pytest.CaptureFixture[str],
    setup: Setup,
    tier: str,
    configured: str,
    listed: bool,
    picked: str,
    why: str,
) -> None:
    if listed and configured not in setup.gemini.models:
        setup.gemini.lineup[configured] = FakeModel(configured, levels=(), budget_ok=True)
        setup.gemini.models.add(configured)
    assert (configured in setup.gemini.models) == listed
    setup.edit(lambda d: d["review"]["models"].update({tier: configured}))
    run, report = _doctor(capsys, setup)
    assert run.code == 0, run.out  # the review still has a model: a warning, not a failure
    check = _check(report, "gemini.models")
    assert check["status"] == "warn", check
    detail = check["detail"]
    assert configured in detail and why in detail and picked in detail, detail
    family = {"lite": "flash-lite", "standard": "flash", "deep": "pro"}[tier]
    assert f"{tier}: {family}" in check["fix"]
    # What a review resolves the tier to, as the doctor says: the replacement once the model
    # is gone; the model itself while it still works, with its shutdown date announced.
    plan = resolve_plan({tier: configured}, [], setup.gemini.models, today=today_utc())
    uses = plan.primary(tier)
    assert f"{tier} → {uses}" in detail
    assert uses == picked or (uses == configured and "will be shut down" in detail)
    text = gatebot(capsys, "doctor", "--repo", str(setup.repo))
    lines = text.out.splitlines()
    (line,) = [ln for ln in lines if ln.startswith("WARN") and "Gemini models" in ln]
    assert configured in line and picked in line


def test_token_without_checks_permission(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    setup.github.forbid_checks()
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "github.checks")
    assert check["status"] == "fail"
    assert "may not write check runs" in check["detail"]
    assert "checks: write" in check["fix"]
    assert _check(report, "github.token")["status"] == "pass"
    assert setup.github.calls("POST", "/check-runs")  # the probe really was refused


def test_bad_github_token(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_not_the_right_one_12345")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "github.token")
    assert check["status"] == "fail"
    assert "401" in check["detail"]
    assert "ghs_not_the_right_one_12345" not in run.out


def test_wrong_host_key(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A well-formed pin for this host:port, but of another key (the client's public key).
    pub = (setup.sshd.root / "id_ed25519.pub").read_text().split()
    monkeypatch.setenv("GATEBOT_KNOWN_HOSTS", f"[127.0.0.1]:{setup.sshd.port} {pub[0]} {pub[1]}\n")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "target.inf.ssh")
    assert check["status"] == "fail"
    assert "does not match the pinned" in check["detail"]
    assert "out of band" in check["fix"] and "GATEBOT_KNOWN_HOSTS" in check["fix"]
    assert _check(report, "target.inf.network")["status"] == "pass"
    assert _check(report, "target.inf.gtw")["status"] == "skip"


def test_missing_ssh_key_secret(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEBOT_SSH_KEY")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "target.inf.ssh")
    assert check["status"] == "fail"
    assert "GATEBOT_SSH_KEY" in check["detail"]


def test_target_unreachable(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    port = free_port()
    setup.edit(lambda d: d["deploy"]["targets"]["inf"].update({"port": port}))
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "target.inf.network")
    assert check["status"] == "fail"
    assert f"127.0.0.1:{port}" in check["detail"]
    assert _check(report, "target.inf.ssh")["status"] == "skip"


def test_gtw_down(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    setup.gtw.set_mode("stopped")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "target.inf.gtw")
    assert check["status"] == "fail"
    assert setup.gtw.endpoint in check["detail"]
    assert "start the GTW" in check["fix"]
    assert _check(report, "target.inf.ssh")["status"] == "pass"


def test_gtw_without_pyzmq_before_first_deploy_is_a_warning(
    capsys: pytest.CaptureFixture[str], setup: Setup, tmp_path: Path
) -> None:
    # A host interpreter without pyzmq: a venv made without site packages has none.
    import venv

    bare = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False).create(bare)
    setup.edit(lambda d: d["deploy"]["targets"]["inf"].update({"python": str(bare / "bin/python")}))
    run, report = _doctor(capsys, setup)
    check = _check(report, "target.inf.gtw")
    assert check["status"] == "warn", check
    assert "deploy once" in check["fix"]
    assert run.code == 0


def test_unknown_target_is_a_usage_error(capsys: pytest.CaptureFixture[str], setup: Setup) -> None:
    run = gatebot(capsys, "doctor", "--repo", str(setup.repo), "--target", "nope")
    assert run.code == 2
    assert "no such deploy target" in run.err


def test_cache_not_writable(
    capsys: pytest.CaptureFixture[str],
    setup: Setup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(blocker))
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "cache")
    assert check["status"] == "fail"
    assert "GATEBOT_CACHE_DIR" in check["fix"]


def test_no_token_inside_actions(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    run, report = _doctor(capsys, setup)
    assert run.code == 1
    check = _check(report, "github.token")
    assert check["status"] == "fail"
    assert "github.token" in check["fix"]  # the `${{ github.token }}` expression to pass
    assert not setup.github.requests


def test_outside_actions_github_is_not_required(
    capsys: pytest.CaptureFixture[str], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name)
    run, report = _doctor(capsys, setup, "--target", "inf")
    assert run.code == 0, run.out
    assert _check(report, "github.token")["status"] == "skip"
    assert _check(report, "github.checks")["status"] == "skip"
    assert not setup.github.requests


def test_explicit_config(capsys: pytest.CaptureFixture[str], setup: Setup, tmp_path: Path) -> None:
    other = tmp_path / "other.yml"
    other.write_text("review:\n  budget_tokens: 10\n")
    run, report = _doctor(capsys, setup, "--config", str(other), "--target", "inf")
    assert run.code == 1
    check = _check(report, "config")
    assert "review.budget_tokens" in check["detail"]
    missing = gatebot(capsys, "doctor", "--repo", str(setup.repo), "--config", str(tmp_path / "x"))
    assert missing.code == 2
