"""Hooks, the env file per release and the health-gated switch, decided against the in-memory
host (bot/deploy/host/memory.py): milliseconds each, no sshd. The same decisions run over the
wire in tests/deploy/test_lifecycle.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config.load import parse_config
from bot.deploy.host.memfs import File
from bot.deploy.host.memory import OK, CommandCall
from bot.deploy.hostside.envfile import parse_env
from bot.deploy.hostside.protocol import CommandAnswer
from bot.errors import ConfigError
from tests.deploy.memenv import MemEnv
from tests.gitrepo import RepoBuilder

BASE = {"app.py": "print(1)\n", "lib/util.py": "X = 1\n", "requirements.txt": ""}
POINTS = ("before_build", "after_build", "before_switch", "after_switch", "after_rollback")
ALL_HOOKS = {p: f"echo {p}" for p in POINTS}


@pytest.fixture
def env(tmp_path: Path) -> MemEnv:
    e = MemEnv(tmp_path, RepoBuilder(tmp_path / "repo"))
    e.target_data()
    return e


def hooks_ran(env: MemEnv) -> list[tuple[str, str]]:
    """(point, release dir name or the root) of every hook the host ran."""
    out = []
    for call in env.host.ran:
        if call.kind == "hook":
            where = call.cwd.rsplit("/", 1)[-1] if "/releases/" in call.cwd else "<path>"
            out.append((call.env["GATEBOT_HOOK"], where))
    return out


def failing(**by_command: int) -> Any:
    """Commands that answer the given status (and a line of output), everything else OK."""

    def commands(call: CommandCall) -> CommandAnswer:
        status = by_command.get(call.command.replace(" ", "_"))
        return CommandAnswer(status, f"{call.command} said no") if status else OK

    return commands


# ---- hooks ------------------------------------------------------------------------------------


def test_each_hook_point_runs_where_and_when_documented(env: MemEnv) -> None:
    env.rb.commit(BASE)
    config = env.config(hooks=ALL_HOOKS)
    first = env.deploy(ctx=env.ctx(config))
    assert first.ok, first.error
    rel = first.release
    assert hooks_ran(env) == [
        ("before_build", "<path>"),
        ("after_build", rel),
        ("before_switch", rel),
        ("after_switch", rel),
    ]
    assert [h.point for h in first.hooks] == list(POINTS[:4]) and all(
        h.status == 0 for h in first.hooks
    )
    call = next(
        c for c in env.host.ran if c.kind == "hook" and c.env["GATEBOT_HOOK"] == "after_switch"
    )
    assert call.env["GATEBOT_RELEASE"] == rel and call.env["GATEBOT_TARGET"] == "inf"
    assert call.env["GATEBOT_SHA"] == first.sha and call.env["GATEBOT_PREVIOUS"] == ""
    assert "hook" in env.events()
    env.rb.commit({"app.py": "print(2)\n"})
    second = env.deploy(ctx=env.ctx(config))
    env.host.ran.clear()
    back = env.rollback(config=config)
    assert back.ok and env.host.live() == rel
    # A rollback builds nothing; it switches (before/after_switch) and then after_rollback.
    assert hooks_ran(env) == [
        ("before_switch", rel),
        ("after_switch", rel),
        ("after_rollback", rel),
    ]
    assert second.release != rel


def test_a_failing_before_switch_hook_leaves_current_where_it_was(env: MemEnv) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.commands = failing(echo_before_switch=3)
    env.rb.commit({"app.py": "print(2)\n"})
    r = env.deploy(ctx=env.ctx(env.config(hooks=ALL_HOOKS)))
    assert not r.ok and r.exit_code == 1 and r.status == "failed"
    assert "before_switch hook `echo before_switch` exited 3" in (r.error or "")
    assert env.host.live() == good.release and env.read("app.py") == "print(1)\n"
    assert "after_switch" not in [h.point for h in r.hooks]
    assert not env.host.fs.isdir(f"{env.host.root}/.gatebot/lock")
    # The release was complete: it stays for a later deploy of the same commit.
    assert r.release in env.host.releases()


def test_a_failing_after_build_hook_removes_the_release(env: MemEnv) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.commands = failing(echo_after_build=1)
    env.rb.commit({"app.py": "print(2)\n"})
    r = env.deploy(ctx=env.ctx(env.config(hooks=ALL_HOOKS)))
    assert not r.ok and env.host.live() == good.release
    assert r.release not in env.host.releases() and "after_build" in (r.error or "")


def test_a_failing_before_build_hook_builds_nothing(env: MemEnv) -> None:
    env.rb.commit(BASE)
    env.host.commands = failing(echo_before_build=1)
    r = env.deploy(ctx=env.ctx(env.config(hooks=ALL_HOOKS)))
    assert not r.ok and env.host.releases() == [] and env.host.live() is None
    assert "extract" not in env.host.calls


def test_a_failing_after_switch_hook_rolls_back_and_runs_after_rollback(env: MemEnv) -> None:
    env.rb.commit(BASE)
    good = env.deploy()
    env.host.commands = failing(echo_after_switch=2)
    env.rb.commit({"app.py": "print(2)\n"})
    r = env.deploy(ctx=env.ctx(env.config(hooks=ALL_HOOKS)))
    assert not r.ok and r.status == "auto-rolled-back" and env.host.live() == good.release
    assert [h.point for h in r.hooks][-2:] == ["after_switch", "after_rollback"]
    after = [
        c for c in env.host.ran if c.kind == "hook" and c.env["GATEBOT_HOOK"] == "after_rollback"
    ]
    assert after[-1].cwd.endswith(good.release or "?")
    assert any(e["event"] == "bad" and e["release"] == r.release for e in env.host.log_events())


def test_a_failing_after_rollback_hook_is_reported_and_the_rollback_stands(env: MemEnv) -> None:
    env.rb.commit(BASE)
    first = env.deploy()
    env.rb.commit({"app.py": "print(2)\n"})
    env.deploy()
    env.host.commands = failing(echo_after_rollback=5)
    back = env.rollback(config=env.config(hooks=ALL_HOOKS))
    assert not back.ok and back.exit_code == 1 and "after_rollback" in (back.error or "")
    assert env.host.live() == first.release


def test_a_timed_out_hook_says_so(env: MemEnv) -> None:
    env.rb.commit(BASE)
    env.host.commands = lambda call: (
        CommandAnswer(124, "(timed out after 1s)") if call.kind == "hook" else OK
    )
    r = env.deploy(
        ctx=env.ctx(env.config(hooks={"before_switch": {"run": "sleep 9", "timeout_s": 1}}))
    )
    assert not r.ok and "timed out" in (r.error or "") and env.host.live() is None


def test_target_hooks_replace_the_deploy_wide_ones_point_by_point(env: MemEnv) -> None:
    env.rb.commit(BASE)
    target = env.target_data(hooks={"after_switch": "echo mine", "before_build": []})
    config = env.config(
        {"inf": target},
        hooks={"after_switch": "echo all", "before_build": "x", "after_build": "echo ab"},
    )
    r = env.deploy(ctx=env.ctx(config))
    assert r.ok
    ran = [(c.env["GATEBOT_HOOK"], c.command) for c in env.host.ran if c.kind == "hook"]
    assert ran == [("after_build", "echo ab"), ("after_switch", "echo mine")]


def test_hook_output_reaches_the_log_and_report_with_secrets_masked(env: MemEnv) -> None:
    env.rb.commit(BASE)
    secret = "s3cr3t-VALUE-42"
    env.host.commands = lambda call: (
        CommandAnswer(0, f"line one\nthe token is {secret}\n") if call.kind == "hook" else OK
    )
    target = env.target_data(env={"secrets": ["API_TOKEN"]})
    r = env.deploy(
        ctx=env.ctx(
            env.config({"inf": target}, hooks={"after_build": "show"}), env={"API_TOKEN": secret}
        )
    )
    assert r.ok, r.error
    log = env.out.getvalue()
    assert "[inf] after_build | line one" in log and "the token is ***" in log
    assert secret not in log and secret not in r.model_dump_json()
    assert "***" in r.hooks[0].output
    assert secret not in json.dumps(env.host.log_events())


# ---- the env file -----------------------------------------------------------------------------


def _env_file(env: MemEnv, release: str | None) -> Any:
    node = env.host.fs.get(f"{env.host.root}/.gatebot/env/{release}.env")
    assert isinstance(node, File)
    return node


def test_env_file_round_trip_and_rollback_restores_the_env_a_release_ran_with(env: MemEnv) -> None:
    target = env.target_data(
        env={"secrets": ["DB_PASSWORD", "API_TOKEN"], "vars": {"MODE": "prod"}}
    )
    config = env.config({"inf": target})
    env.rb.commit(BASE)
    first = env.deploy(
        ctx=env.ctx(config, env={"DB_PASSWORD": "pw-1 'quoted'", "API_TOKEN": "tok-1"})
    )
    assert first.ok, first.error
    node = _env_file(env, first.release)
    assert node.mode == 0o600
    assert parse_env(node.data.decode()) == {
        "DB_PASSWORD": "pw-1 'quoted'",
        "API_TOKEN": "tok-1",
        "MODE": "prod",
    }
    assert parse_env(env.read(".env") or "") == parse_env(node.data.decode())  # current/.env
    assert first.env is not None and first.env.added == ["API_TOKEN", "DB_PASSWORD", "MODE"]
    # Second release: one secret rotated, one var gone, one new.
    target2 = env.target_data(env={"secrets": ["DB_PASSWORD", "API_TOKEN", "NEW_ONE"]})
    env.rb.commit({"app.py": "print(2)\n"})
    second = env.deploy(
        ctx=env.ctx(
            env.config({"inf": target2}),
            env={"DB_PASSWORD": "pw-2", "API_TOKEN": "tok-1", "NEW_ONE": "n"},
        )
    )
    assert second.ok and second.env is not None
    assert (second.env.added, second.env.removed, second.env.changed) == (
        ["NEW_ONE"],
        ["MODE"],
        ["DB_PASSWORD"],
    )
    assert parse_env(env.read(".env") or "")["DB_PASSWORD"] == "pw-2"
    assert "pw-2" not in env.out.getvalue() and "pw-2" not in second.model_dump_json()
    env_events = [e for e in env.host.log_events() if e["event"] == "env"]
    assert env_events[-1]["detail"] == "added: NEW_ONE; removed: MODE; changed: DB_PASSWORD"
    back = env.rollback()
    assert back.ok and env.host.live() == first.release
    assert parse_env(env.read(".env") or "")["DB_PASSWORD"] == "pw-1 'quoted'"


def test_a_missing_secret_fails_before_any_host_is_touched(env: MemEnv) -> None:
    target = env.target_data(env={"secrets": ["DB_PASSWORD", "OTHER"]})
    env.rb.commit(BASE)
    with pytest.raises(ConfigError, match="not set in the environment: DB_PASSWORD, OTHER"):
        env.deploy(ctx=env.ctx(env.config({"inf": target}), env={}))
    assert env.host.calls == []


def test_a_redeploy_of_the_live_sha_rewrites_its_env_and_restarts(env: MemEnv) -> None:
    target = env.target_data(env={"secrets": ["TOKEN"]})
    env.rb.commit(BASE)
    first = env.deploy(ctx=env.ctx(env.config({"inf": target}), env={"TOKEN": "a"}))
    again = env.deploy(ctx=env.ctx(env.config({"inf": target}), env={"TOKEN": "b"}))
    assert (
        again.status == "already-live" and again.env is not None and again.env.changed == ["TOKEN"]
    )
    assert parse_env(env.read(".env") or "") == {"TOKEN": "b"} and first.release == again.release
    assert [c.kind for c in env.host.ran].count("restart") == 2


def test_the_trees_own_env_file_is_not_deployed_over_the_link(env: MemEnv) -> None:
    target = env.target_data(env={"vars": {"A": "1"}})
    env.rb.commit({**BASE, ".env": "COMMITTED=1\n"})
    r = env.deploy(ctx=env.ctx(env.config({"inf": target})))
    assert r.ok and parse_env(env.read(".env") or "") == {"A": "1"}
    assert any("is not deployed" in n for n in r.notes)


@pytest.mark.parametrize(
    "bad",
    [
        {"secrets": ["9NOPE"]},
        {"secrets": ["A", "A"]},
        {"file": "../outside.env"},
        {"file": ".venv"},
        {"vars": {"A": "x"}, "secrets": ["A"]},
    ],
)
def test_bad_env_settings_are_config_errors(env: MemEnv, bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        env.config({"inf": env.target_data(env=bad)})


# ---- the health-gated switch ------------------------------------------------------------------

HEALTH = {"start": "exec ./serve", "ports": [8001, 8002], "check": {"http": "/healthz"}}


def _health_target(env: MemEnv, **health: Any) -> dict[str, Any]:
    return env.target_data(restart=None, health={**HEALTH, **health})


def test_a_healthy_release_is_switched_to_and_the_old_one_stopped(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env)})
    env.rb.commit(BASE)
    first = env.deploy(ctx=env.ctx(config))
    assert first.ok and first.health is not None and first.health["port"] == 8001
    env.rb.commit({"app.py": "print(2)\n"})
    second = env.deploy(ctx=env.ctx(config))
    assert second.ok and env.host.live() == second.release
    assert second.health is not None and second.health["healthy"] and second.health["port"] == 8002
    assert second.health["stopped"] == first.release
    services = env.host.services
    assert services[second.release or ""].running and not services[first.release or ""].running
    order = [
        c
        for c in env.host.calls
        if c in ("start_service", "wait_healthy", "switch", "stop_service")
    ]
    assert order[-4:] == ["start_service", "wait_healthy", "switch", "stop_service"]
    assert [c.kind for c in env.host.ran].count("restart") == 0


def test_a_release_that_never_gets_healthy_is_never_switched_to(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env, timeout_s=5)})
    env.rb.commit(BASE)
    good = env.deploy(ctx=env.ctx(config))
    env.rb.commit({"app.py": "print(2)\n"})
    env.host.healthy = lambda release: release == good.release
    r = env.deploy(ctx=env.ctx(config))
    assert not r.ok and r.exit_code == 1 and "never got healthy within 5s" in (r.error or "")
    assert env.host.live() == good.release and env.host.services[good.release or ""].running
    candidate = [s for rel, s in env.host.services.items() if rel != good.release]
    assert candidate and not candidate[0].running  # stopped
    assert r.release not in env.host.releases()  # a release built for nothing is removed
    assert (
        "switch"
        not in env.host.calls[env.host.calls.index("wait_healthy", len(env.host.calls) - 12) :]
    )


def test_a_start_command_that_fails_fails_fast(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env)})
    env.rb.commit(BASE)
    env.host.commands = lambda call: (
        CommandAnswer(3, "no such file") if call.kind == "start" else OK
    )
    r = env.deploy(ctx=env.ctx(config))
    assert not r.ok and "exited with 3" in (r.error or "") and env.host.live() is None


def test_a_failed_audit_in_health_mode_goes_back_to_the_old_process(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env)})
    env.rb.commit(BASE)
    good = env.deploy(ctx=env.ctx(config))
    env.host.audit_failures = lambda release, sha: (
        {"imports": "x"} if release != good.release else {}
    )
    env.rb.commit({"app.py": "import missing\n"})
    bad = env.deploy(ctx=env.ctx(config))
    assert bad.status == "auto-rolled-back" and env.host.live() == good.release
    services = env.host.services
    assert services[good.release or ""].running and services[good.release or ""].stops == 0
    assert not services[bad.release or ""].running


def test_a_failing_before_switch_hook_stops_the_started_release(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env)}, hooks={"before_switch": "veto"})
    env.rb.commit(BASE)
    env.host.commands = failing(veto=1)
    r = env.deploy(ctx=env.ctx(config))
    assert not r.ok and env.host.live() is None
    assert not env.host.services[r.release or ""].running


def test_rollback_in_health_mode_starts_the_old_release_before_switching(env: MemEnv) -> None:
    config = env.config({"inf": _health_target(env)})
    env.rb.commit(BASE)
    first = env.deploy(ctx=env.ctx(config))
    env.rb.commit({"app.py": "print(2)\n"})
    second = env.deploy(ctx=env.ctx(config))
    back = env.rollback(config=config)
    assert back.ok and env.host.live() == first.release
    assert env.host.services[first.release or ""].running
    assert not env.host.services[second.release or ""].running


def test_a_redeploy_in_health_mode_starts_the_live_release_only_if_it_is_not_running(
    env: MemEnv,
) -> None:
    config = env.config({"inf": _health_target(env)})
    env.rb.commit(BASE)
    first = env.deploy(ctx=env.ctx(config))
    starts = [c.kind for c in env.host.ran].count("start")
    again = env.deploy(ctx=env.ctx(config))
    assert (
        again.status == "already-live" and [c.kind for c in env.host.ran].count("start") == starts
    )
    env.host.services[first.release or ""].running = False  # the host rebooted, say
    third = env.deploy(ctx=env.ctx(config))
    assert third.ok and [c.kind for c in env.host.ran].count("start") == starts + 1


@pytest.mark.parametrize(
    "health",
    [
        {"start": "x", "check": {}},
        {"start": "x", "check": {"http": "/h", "tcp": True}, "ports": [1, 2]},
        {"start": "x", "check": {"tcp": True}},
        {"start": "x", "check": {"http": "ftp://x"}, "ports": [1, 2]},
        {"start": "x", "check": {"tcp": True}, "ports": [1]},
        {"start": "x", "check": {"tcp": True}, "socket": "../x.sock"},
    ],
)
def test_bad_health_settings_are_config_errors(env: MemEnv, health: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        env.config({"inf": env.target_data(restart=None, health=health)})


def test_restart_and_health_together_are_a_config_error(env: MemEnv) -> None:
    with pytest.raises(ConfigError, match="either restart"):
        parse_config({"deploy": {"targets": {"inf": env.target_data(health=HEALTH)}}})


def test_the_job_summary_shows_hooks_env_names_and_health_never_a_value(env: MemEnv) -> None:
    from bot.deploy.jobsummary import summary_markdown
    from bot.deploy.report import RolloutReport

    secret = "summary-secret-123"
    env.host.commands = lambda call: (
        CommandAnswer(0, f"<b>done</b> with {secret}") if call.kind == "hook" else OK
    )
    target = {**_health_target(env), "env": {"secrets": ["TOKEN"]}}
    config = env.config({"inf": target}, hooks={"after_switch": "reload"})
    env.rb.commit(BASE)
    r = env.deploy(ctx=env.ctx(config, env={"TOKEN": secret}))
    assert r.ok, r.error
    text = summary_markdown(RolloutReport(op="deploy", ok=True, hosts=[r]))
    assert secret not in text
    assert "#### inf: hooks" in text and "after_switch: reload" in text
    assert "&lt;b&gt;done&lt;/b&gt; with ***" in text  # output escaped and masked
    assert "added: `TOKEN` (names only)" in text
    assert "#### inf: health gate" in text and "healthy after" in text and "port 8001" in text
