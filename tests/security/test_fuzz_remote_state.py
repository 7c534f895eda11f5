"""What a compromised or broken Inf tells gatebot is data, and bad data is a clean failure.

The deploy reads back the deploy log, the lock owner record, release markers and the replies of
its host agent. A host that answers garbage may fail a deploy, but never with a traceback, and
never by making gatebot act on a forged record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.deploy.lock import LockOwner
from bot.deploy.log import parse_log
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder
from tests.security.harness import clean_env, run_gatebot
from tests.security.strategies import fuzz_settings

FUZZ = fuzz_settings(200)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=10,
)
log_like = st.fixed_dictionaries(
    {},
    optional={
        "ts": st.text(max_size=25) | json_values,
        "event": st.sampled_from(["release", "switch", "rollback", "bad", "prune"]) | json_values,
        "release": st.sampled_from(["20260101T000000Z-abcdef0", "../../x", ""]) | json_values,
        "sha": st.text(max_size=40) | json_values,
        "previous": json_values,
        "ok": st.booleans() | json_values,
        "detail": json_values,
        "run_id": json_values,
    },
)
log_lines = st.one_of(
    log_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60).filter(lambda s: "\n" not in s and "\r" not in s),
)


@FUZZ
@given(st.lists(log_lines, max_size=8))
def test_deploy_log_lines_are_events_or_counted_as_unreadable(lines: list[str]) -> None:
    events, bad = parse_log("\n".join(lines))
    real_lines = [ln for ln in "\n".join(lines).splitlines() if ln.strip()]
    assert len(events) + bad == len(real_lines)


def test_a_deeply_nested_log_line_is_unreadable_not_a_crash() -> None:
    _events, bad = parse_log('{"event": "switch"}\n' + "[" * 100_000 + "\n")
    assert bad == 1


@FUZZ
@given(json_values | st.fixed_dictionaries({"run_id": json_values}, optional={"pid": json_values}))
def test_lock_owner_record_is_an_owner_or_none(data: Any) -> None:
    owner = LockOwner.from_json(data)
    assert owner is None or isinstance(owner.pid, int)


def test_lock_owner_with_an_infinite_pid_is_unknown() -> None:
    assert LockOwner.from_json(json.loads('{"run_id": "r", "pid": 1e400}')) is None


# ---- the host agent answering garbage, end to end through `gatebot deploy` ------------------

HOSTILE_AGENTS = {
    "not-json": "hello from a compromised host",
    "json-list": "[1, 2, 3]",
}


def _fake_python(root: Path, first_line: str) -> Path:
    fake = root / "fake-python.sh"
    # Whatever it is asked to run, answer one line and then hang up (or stay silent).
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{first_line}'\ncat >/dev/null\n")
    fake.chmod(0o755)
    return fake


@pytest.mark.sshd
@pytest.mark.parametrize("answer", list(HOSTILE_AGENTS.values()), ids=list(HOSTILE_AGENTS))
def test_a_host_agent_that_answers_garbage_fails_cleanly(
    sshd: SshServer, tmp_path: Path, answer: str
) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit({"app.py": "x = 1\n"})
    config = {
        "deploy": {
            "targets": {
                "inf": {
                    **sshd.target(tmp_path / "host").model_dump(exclude_none=True),
                    "python": str(_fake_python(tmp_path, answer)),
                    "lock_file": None,
                    "install": None,
                    "lock_wait_s": 0,
                }
            }
        }
    }
    cfg = tmp_path / "gatebot.yml"
    cfg.write_text(yaml.safe_dump(config))
    proc = run_gatebot(
        ["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(rb.path), "--no-audit"],
        clean_env(GATEBOT_CACHE_DIR=str(tmp_path / "cache")),
        tmp_path,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (1, 3), proc.stdout + proc.stderr
    assert "gatebot:" in proc.stderr
    assert not (tmp_path / "host" / "current").exists()
