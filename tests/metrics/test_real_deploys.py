"""Histories written by REAL deploys and rollbacks over the loopback sshd give the figures a person
computes by hand from the deploy reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.metrics import AlertsConfig
from bot.metrics.alerts import evaluate
from bot.metrics.figures import figures
from bot.metrics.history import history_path, load_history
from bot.metrics.records import DeployEntry
from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder

pytestmark = pytest.mark.sshd


def test_deploys_and_rollback_land_in_the_history(sshd: SshServer, tmp_path: Path) -> None:
    env = DeployEnv(
        sshd, tmp_path, RepoBuilder(tmp_path / "repo"), tmp_path / "host" / "inf",
        tmp_path / "installs.log",
    )  # fmt: skip
    cache = tmp_path / "cache"
    env.rb.commit({"app/main.py": "print('v1')\n", "data.bin": bytes(2048), "requirements.txt": ""})
    first = env.deploy(ctx=env.ctx(cache_dir=cache, run_id="501"))
    env.rb.commit({"app/main.py": "print('v2')\n"})
    second = env.deploy(ctx=env.ctx(cache_dir=cache, run_id="502"))
    back = env.rollback(ctx=env.ctx(cache_dir=cache, run_id="503"))
    reports = [first, second, back]
    assert all(r.ok for r in reports), [r.error for r in reports]

    history = load_history(history_path(cache))
    assert history.problems == []
    entries = [e for e in history.entries if isinstance(e, DeployEntry)]
    assert [(e.kind, e.target, e.ok) for e in entries] == [
        ("deploy", "inf", True),
        ("deploy", "inf", True),
        ("rollback", "inf", True),
    ]
    for entry, report in zip(entries, reports, strict=True):
        assert (entry.bytes_sent, entry.files_sent) == (report.bytes_sent, report.files_sent)
        assert entry.duration_s == report.duration_s
        assert entry.sha == report.sha

    d = figures(history.entries).deploy
    assert (d.deploys, d.rollbacks, d.failed_deploys) == (2, 1, 0)
    assert d.bytes_sent == first.bytes_sent + second.bytes_sent + back.bytes_sent
    assert d.files_sent == first.files_sent + second.files_sent + back.files_sent
    assert first.bytes_sent > second.bytes_sent  # the delta release sent less
    # two deploy durations: nearest-rank p50 is the smaller, p95 the larger
    assert d.deploy_duration_p50_s == min(first.duration_s, second.duration_s)
    assert d.deploy_duration_p95_s == max(first.duration_s, second.duration_s)
    assert evaluate(history.entries, AlertsConfig()) == []
