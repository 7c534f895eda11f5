"""`gatebot init` in real (pygit2) repositories: files, idempotence, --force, --dry-run, keys."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import asyncssh
import pytest
import yaml

from bot.config import GatebotConfig, load_config
from bot.onboarding.init import CHECK_NAME
from bot.onboarding.pins import GATEBOT
from tests.gitrepo import RepoBuilder
from tests.onboarding.helpers import gatebot

FILES = (
    ".github/gatebot.yml",
    ".github/workflows/review.yml",
    ".github/workflows/deploy.yml",
    ".github/workflows/gatebot-commands.yml",
    ".github/workflows/gatebot-approve.yml",
)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((root / ".github").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return RepoBuilder(tmp_path / "repo").path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The default key location is ~/.ssh: keep it inside the test's own directory.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _init_target(capsys: pytest.CaptureFixture[str], repo: Path, *extra: str):  # type: ignore[no-untyped-def]
    return gatebot(
        capsys,
        "init",
        "--repo",
        str(repo),
        "--deploy-target",
        "inf",
        "--host",
        "inf.internal",
        "--user",
        "deploy",
        "--path",
        "/opt/inf",
        "--port",
        "2222",
        *extra,
    )


@pytest.mark.parametrize("tool", ["check-jsonschema", "zizmor"])
def test_workflows_pass_github_schema_and_zizmor(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path, tool: str
) -> None:
    run = _init_target(capsys, repo)
    assert run.code == 0, run.err
    workflows = [str(repo / f) for f in FILES[1:]]
    if tool == "check-jsonschema":
        cmd = ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows]
    else:
        cmd = ["zizmor", "--offline", "--min-severity", "medium", *workflows]
    assert shutil.which(cmd[0]), f"{cmd[0]} is a dev dependency and must be installed"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_pin_every_action_to_a_sha(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path
) -> None:
    assert _init_target(capsys, repo).code == 0
    for name in FILES[1:]:
        doc = yaml.safe_load((repo / name).read_text())
        uses = [s["uses"] for job in doc["jobs"].values() for s in job["steps"] if "uses" in s]
        assert uses, name
        for ref in uses:
            assert len(ref.split("@")[1]) == 40, ref
    review = yaml.safe_load((repo / FILES[1]).read_text())
    assert f"{GATEBOT.repo}@{GATEBOT.sha}" in [
        s.get("uses") for s in review["jobs"]["review"]["steps"]
    ]
    deploy = yaml.safe_load((repo / FILES[2]).read_text())
    assert deploy["jobs"]["deploy"]["runs-on"] == ["self-hosted", "gatebot-inf"]


def test_config_without_target_is_exactly_the_defaults(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    run = gatebot(capsys, "init", "--repo", str(repo))
    assert run.code == 0, run.err
    # The commented template says "the values below ARE the defaults": hold it to that.
    assert load_config(None, repo) == GatebotConfig()
    assert not (repo / FILES[2]).exists()  # no target, no deploy workflow
    assert CHECK_NAME in run.out
    assert "GEMINI_API_KEY" in run.out


def test_config_with_target_loads_with_our_loader(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path
) -> None:
    assert _init_target(capsys, repo).code == 0
    target = load_config(None, repo).deploy.targets["inf"]
    assert (target.host, target.port, target.user, target.path) == (
        "inf.internal",
        2222,
        "deploy",
        "/opt/inf",
    )
    assert target.identity_env == "GATEBOT_SSH_KEY"
    assert target.known_hosts_env == "GATEBOT_KNOWN_HOSTS"


def test_rerun_changes_nothing(capsys: pytest.CaptureFixture[str], repo: Path, home: Path) -> None:
    first = _init_target(capsys, repo)
    assert first.code == 0
    before = _snapshot(repo)
    key = home / ".ssh" / "gatebot_inf_ed25519"
    key_before = key.read_bytes()
    again = _init_target(capsys, repo)
    assert again.code == 0, again.err
    assert _snapshot(repo) == before
    assert key.read_bytes() == key_before
    assert again.out.count("unchanged") == len(FILES)
    assert "(reusing)" in again.out


def test_existing_file_needs_force(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path
) -> None:
    mine = repo / ".github" / "gatebot.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("review:\n  blocking_severity: low\n")
    run = _init_target(capsys, repo)
    assert run.code == 0
    assert mine.read_text() == "review:\n  blocking_severity: low\n"
    assert "--force" in run.out and "--force" in run.err
    assert (repo / FILES[1]).exists()  # the other files are still written
    assert "add this block under deploy.targets" in run.out
    assert "host: inf.internal" in run.out

    forced = _init_target(capsys, repo, "--force")
    assert forced.code == 0
    assert "blocking_severity: high" in mine.read_text()
    assert "overwrite" in forced.out


def test_dry_run_writes_nothing_and_shows_content(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path
) -> None:
    run = _init_target(capsys, repo, "--dry-run")
    assert run.code == 0, run.err
    assert not (repo / ".github").exists()
    assert not (home / ".ssh").exists()
    assert "would create" in run.out
    assert "identity_env: GATEBOT_SSH_KEY" in run.out  # the config content is shown
    assert "runs-on: [self-hosted, gatebot-inf]" in run.out


def test_key_is_0600_and_never_printed(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "inf_key"
    run = _init_target(capsys, repo, "--key-file", str(key_file))
    assert run.code == 0, run.err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = key_file.read_text()
    key = asyncssh.import_private_key(private)
    body = "".join(private.strip().splitlines()[1:-1])
    for chunk in (private, body, body[:40], body[-40:]):
        assert chunk not in run.out and chunk not in run.err
    public = key.export_public_key("openssh").decode().strip()
    assert public in run.out  # the line to install on the host
    assert "ssh-keyscan -p 2222 -t ed25519 inf.internal" in run.out
    assert "GATEBOT_KNOWN_HOSTS" in run.out
    assert "out of band" in run.out


def test_key_inside_the_repository_is_refused(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    run = _init_target(capsys, repo, "--key-file", str(repo / "deploy_key"))
    assert run.code == 2
    assert "inside the repository" in run.err
    assert not (repo / "deploy_key").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "h"], "only make sense with --deploy-target"),
        (["--deploy-target", "inf"], "--host is required"),
        (["--deploy-target", "inf", "--host", "h", "--path", "opt/inf"], "--path"),
        (["--deploy-target", "inf", "--host", "h", "--port", "70000"], "--port"),
        (["--deploy-target", "bad name", "--host", "h"], "target name"),
        (["--action", "OWNER/gatebot@v1"], "not a full commit sha"),
    ],
)
def test_bad_flags_are_usage_errors(
    capsys: pytest.CaptureFixture[str], repo: Path, home: Path, argv: list[str], message: str
) -> None:
    run = gatebot(capsys, "init", "--repo", str(repo), *argv)
    assert run.code == 2
    assert message in run.err
    assert not (repo / ".github").exists()


def test_not_a_repository(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = gatebot(capsys, "init", "--repo", str(tmp_path))
    assert run.code == 2
    assert "not inside a git repository" in run.err


def test_action_override_is_pinned(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    sha = "a" * 40
    run = gatebot(capsys, "init", "--repo", str(repo), "--action", f"acme/gatebot-fork@{sha}")
    assert run.code == 0, run.err
    assert f"uses: acme/gatebot-fork@{sha}" in (repo / FILES[1]).read_text()


def test_subdirectory_writes_at_the_work_tree_root(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    assert gatebot(capsys, "init", "--repo", str(sub)).code == 0
    assert (repo / FILES[0]).exists()
    assert not (sub / ".github").exists()
    assert os.listdir(sub) == []


def test_doctor_accepts_the_fresh_config(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    assert gatebot(capsys, "init", "--repo", str(repo)).code == 0
    run = gatebot(capsys, "doctor", "--repo", str(repo), "--json")
    report = json.loads(run.out)
    config = next(c for c in report["checks"] if c["id"] == "config")
    assert config["status"] == "pass", config
    # Without a Gemini key (the test environment has none) that is the one failure.
    assert [c["id"] for c in report["checks"] if c["status"] == "fail"] == ["gemini.key"]
    assert run.code == 1


@pytest.mark.parametrize(
    ("workflow", "job", "action_file"),
    [
        (FILES[1], "review", "action.yml"),
        (FILES[2], "deploy", "action/deploy/action.yml"),
        (FILES[3], "command", "action.yml"),
    ],
)
def test_workflow_inputs_match_the_published_actions(
    capsys: pytest.CaptureFixture[str],
    repo: Path,
    home: Path,
    workflow: str,
    job: str,
    action_file: str,
) -> None:
    # The generated workflows call this repository's actions: every input they pass must be
    # declared there, and every required input must be passed.
    assert _init_target(capsys, repo).code == 0
    action = yaml.safe_load((Path(__file__).parents[2] / action_file).read_text())
    declared = action["inputs"]
    steps = yaml.safe_load((repo / workflow).read_text())["jobs"][job]["steps"]
    step = next(s for s in steps if s.get("uses", "").startswith(GATEBOT.repo))
    given = set(step.get("with", {}))
    assert given <= set(declared), given - set(declared)
    required = {k for k, v in declared.items() if v.get("required")}
    assert required <= given, required - given
