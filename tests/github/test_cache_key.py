"""The actions/cache key, the config overlay from action inputs, and `gatebot cache-key`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from bot.config.review import ModelsConfig, ReviewConfig
from bot.errors import ConfigError, UsageError
from bot.github.cachekey import cache_key, job_scope, review_hash, workflow_identity
from bot.github.event import load_pull_request, refuse_untrusted_checkout
from bot.github.overlay import apply_overrides
from tests.github.runner import parse_output_file
from tests.gitrepo import RepoBuilder

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"
CHECK = "gatebot / review"


SCOPE = job_scope("octo-org/inf-trader/.github/workflows/review.yml", "review", CHECK, ".")


def test_key_is_run_unique_and_restores_pr_then_base() -> None:
    k = cache_key(ReviewConfig(), "main", 42, "777", "2", scope=SCOPE)
    h = review_hash(ReviewConfig())
    assert k.key == f"gatebot-v1-{h}-{SCOPE}-main-pr42-777-2"
    assert k.restore_keys == (f"gatebot-v1-{h}-{SCOPE}-main-pr42-", f"gatebot-v1-{h}-{SCOPE}-main-")
    assert all(k.key.startswith(r) for r in k.restore_keys)


def test_push_key_restores_its_branch() -> None:
    k = cache_key(ReviewConfig(), "release/1.x", None, "5", "1", scope=SCOPE)
    assert k.key.endswith("-release/1.x-5-1")
    assert len(k.restore_keys) == 1 and k.key.startswith(k.restore_keys[0])


@pytest.mark.parametrize(
    "other",
    [
        ("octo-org/inf-trader/.github/workflows/selftest.yml", "review", CHECK, "."),
        ("octo-org/inf-trader/.github/workflows/review.yml", "lint", CHECK, "."),
        ("octo-org/inf-trader/.github/workflows/review.yml", "review", "gatebot / docs", "."),
        ("octo-org/inf-trader/.github/workflows/review.yml", "review", CHECK, "fixture"),
    ],
    ids=["workflow", "job", "check-name", "working-directory"],
)
def test_other_jobs_never_restore_each_others_cache(other: tuple[str, str, str, str]) -> None:
    mine = cache_key(ReviewConfig(), "main", 42, "7", "1", scope=SCOPE)
    theirs = cache_key(ReviewConfig(), "main", 42, "7", "1", scope=job_scope(*other))
    assert mine.key != theirs.key
    for prefix in mine.restore_keys:
        assert not theirs.key.startswith(prefix)
    for prefix in theirs.restore_keys:
        assert not mine.key.startswith(prefix)


def test_the_workflow_is_its_file_whatever_the_ref() -> None:
    pr = workflow_identity("o/r/.github/workflows/review.yml@refs/pull/42/merge", "review")
    main = workflow_identity("o/r/.github/workflows/review.yml@refs/heads/main", "review")
    assert pr == main == "o/r/.github/workflows/review.yml"
    assert workflow_identity("", "review") == "review"  # act sets no GITHUB_WORKFLOW_REF


def test_model_or_instructions_change_the_hash_but_not_the_threshold() -> None:
    base = review_hash(ReviewConfig())
    assert review_hash(ReviewConfig(models=ModelsConfig(lite="gemini-x"))) != base
    assert review_hash(ReviewConfig(instructions="be strict")) != base
    assert review_hash(ReviewConfig(blocking_severity="critical")) == base


def test_unsafe_characters_are_replaced() -> None:
    k = cache_key(ReviewConfig(), "feat,x y", 1, "1", "1", scope=SCOPE)
    assert "," not in k.key and " " not in k.key


def test_overlay_touches_only_named_keys() -> None:
    raw = {"review": {"ignore": ["docs/**"], "models": {"deep": "gemini-2.5-pro"}}}
    env = {"GATEBOT_MODEL_LITE": "gemini-lite-x", "GATEBOT_CACHE_MAX_MB": "64"}
    data, config, used = apply_overrides(raw, env, "gatebot.yml")
    assert data["review"]["models"] == {"deep": "gemini-2.5-pro", "lite": "gemini-lite-x"}
    assert config.review.cache_max_mb == 64
    assert config.review.ignore == ["docs/**"]
    assert used == ["GATEBOT_MODEL_LITE", "GATEBOT_CACHE_MAX_MB"]
    assert raw["review"]["models"] == {"deep": "gemini-2.5-pro"}  # input not mutated


def test_overlay_error_names_the_input() -> None:
    with pytest.raises(
        ConfigError, match=r"(?s)GATEBOT_BLOCKING_SEVERITY.*review.blocking_severity"
    ):
        apply_overrides(None, {"GATEBOT_BLOCKING_SEVERITY": "urgent"}, "defaults")


def _repo(tmp_path: Path) -> tuple[RepoBuilder, str, str]:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({".github/gatebot.yml": "review:\n  blocking_severity: medium\n"})
    head = rb.commit({"a.py": "x = 1\n"}, branch="pr", parents=[base])
    rb.checkout("main")
    return rb, base, head


def _event(tmp_path: Path, base: str, head: str, fork: bool = False) -> Path:
    name = "pull_request_fork" if fork else "pull_request_opened"
    payload = json.loads((EVENTS / f"{name}.json").read_text())
    payload["pull_request"]["base"]["sha"] = base
    payload["pull_request"]["head"]["sha"] = head
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return path


def test_cache_key_command_in_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rb, base, head = _repo(tmp_path)
    out = tmp_path / "out"
    out.touch()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(_event(tmp_path, base, head)),
        "GITHUB_RUN_ID": "31",
        "GITHUB_RUN_ATTEMPT": "1",
        "GATEBOT_MODEL_DEEP": "gemini-deep-x",
        "GITHUB_WORKSPACE": str(tmp_path / "ws"),
    }
    (tmp_path / "ws").mkdir()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    eff = tmp_path / "eff" / "config.yml"
    result = CliRunner().invoke(
        cli,
        ["cache-key", "--repo", str(rb.path), "--effective-config", str(eff), "--cache-dir", ""],
    )
    assert result.exit_code == 0, result.output
    outputs = parse_output_file(out)
    assert outputs["key"].endswith("-main-pr42-31-1")
    assert outputs["path"] == ".gatebot-cache"
    assert outputs["cache-dir"] == str(tmp_path / "ws" / ".gatebot-cache")
    assert outputs["restore-keys"].splitlines()[0].endswith("-main-pr42-")
    assert outputs["config"] == str(eff)
    text = eff.read_text()
    assert "gemini-deep-x" in text and "blocking_severity: medium" in text
    assert f"key: {outputs['key']}" in result.output


def test_pull_request_target_refuses_the_pr_head_checked_out(tmp_path: Path) -> None:
    _, base, head = _repo(tmp_path)
    shutil.copy(_event(tmp_path, base, head, fork=True), tmp_path / "e.json")
    pr = load_pull_request("pull_request_target", tmp_path / "e.json")
    refuse_untrusted_checkout(pr, False)  # the base checked out: fine
    with pytest.raises(UsageError, match="refusing to run with secrets"):
        refuse_untrusted_checkout(pr, True)
    pr_plain = load_pull_request("pull_request", tmp_path / "e.json")
    refuse_untrusted_checkout(pr_plain, True)  # pull_request has no secrets to protect


@pytest.mark.parametrize("checkout", ["head", "merge"])
def test_cache_key_command_enforces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkout: str
) -> None:
    rb, base, head = _repo(tmp_path)
    if checkout == "merge":  # like refs/pull/N/merge: the PR head is a parent of HEAD
        rb.commit({}, branch="merge", parents=[base, head], message="merge")
        rb.checkout("merge")
    else:
        rb.checkout("pr")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request_target")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(_event(tmp_path, base, head, fork=True)))
    monkeypatch.chdir(rb.path)
    result = CliRunner().invoke(cli, ["cache-key"])
    assert isinstance(result.exception, UsageError)
    assert "pull_request_target" in str(result.exception)


def test_cache_key_command_allows_the_base_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rb, base, head = _repo(tmp_path)  # main (the base) is checked out, the head only fetched
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request_target")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(_event(tmp_path, base, head, fork=True)))
    monkeypatch.chdir(rb.path)
    result = CliRunner().invoke(cli, ["cache-key"])
    assert result.exit_code == 0, result.output
    assert "-main-pr43-" in result.output
