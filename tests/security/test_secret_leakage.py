"""Secrets never leave the process: not on stdout/stderr, not in any file gatebot writes.

Every command runs as a subprocess with recognisable fake secrets — a Gemini API key, a GitHub
token and a real SSH private key (authorised on the loopback sshd) — through the happy path and
the error paths. Then stdout, stderr, every file under the output, cache/history and state
directories, the remote deploy state, and every request body the fake GitHub received are
scanned for each secret, each long line of the key, and their base64 and JSON-escaped forms.

The only place a secret may appear is an `::add-mask::` workflow command, which the runner
consumes (and which exists precisely so that any later accidental print is masked).
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.fakes.gtw import GtwServer
from tests.fakes.sshd import SshServer
from tests.gitrepo import RepoBuilder
from tests.security.harness import (
    Secret,
    clean_env,
    files_under,
    leaks,
    new_private_key,
    run_gatebot,
)

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


def _canary(prefix: str, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass
class World:
    tmp: Path
    repo: RepoBuilder
    base: str
    head: str
    gemini_key: Secret
    github_token: Secret
    ssh_key: Secret
    sshd: SshServer | None
    out: Path
    cache: Path
    host_root: Path

    @property
    def all_secrets(self) -> list[Secret]:
        return [self.gemini_key, self.github_token, self.ssh_key]

    def scan(self, proc: Any, *extra: Path, extra_texts: dict[str, bytes] | None = None) -> None:
        stdout_lines = proc.stdout.splitlines()
        # ::add-mask:: is the one sanctioned place: the runner eats the line and masks the value.
        shown = "\n".join(ln for ln in stdout_lines if not ln.startswith("::add-mask::"))
        texts = {"stdout": shown.encode(), "stderr": proc.stderr.encode()}
        texts.update(files_under(self.out, self.cache, self.host_root / ".gatebot", *extra))
        texts.update(extra_texts or {})
        found = leaks(self.all_secrets, texts)
        assert not found, "secrets leaked:\n" + "\n".join(found)
        # And the scan really looked at something.
        assert len(texts) >= 2


def _world(tmp_path: Path, sshd: SshServer | None) -> World:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit(
        {
            "requirements.txt": "# none\n",
            "app/__init__.py": "",
            "app/adapter.py": "VERSION = 1\n",
        },
        message="base",
    )
    head = rb.commit(
        {"app/adapter.py": "VERSION = 2\n\n\ndef f(x):\n    return eval(x)  # FIXME-SECURITY\n"},
        branch="pr",
        parents=[base],
    )
    return World(
        tmp=tmp_path,
        repo=rb,
        base=base,
        head=head,
        gemini_key=Secret("GEMINI_API_KEY", _canary("AIzaSyLEAKCANARY", 23)),
        github_token=Secret("GITHUB_TOKEN", _canary("ghs_LEAKCANARY", 26)),
        # With an sshd, its authorised client key (the deploy really uses it); else a fresh one.
        ssh_key=Secret(
            "SSH private key", sshd.client_key.read_text() if sshd else new_private_key()
        ),
        sshd=sshd,
        out=tmp_path / "out",
        cache=tmp_path / "cache",
        host_root=tmp_path / "host" / "inf",
    )


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    """Tests marked `sshd` get the loopback sshd and its authorised key; review-side tests run
    without one (the SSH key is still in their environment, to be leaked or not)."""
    sshd = request.getfixturevalue("sshd") if request.node.get_closest_marker("sshd") else None
    return _world(tmp_path, sshd)


def _sshd(w: World) -> SshServer:
    assert w.sshd is not None, "this test needs the deploy_world fixture"
    return w.sshd


def _env(w: World, **extra: str) -> dict[str, str]:
    known = _sshd(w).known_hosts.read_text() if w.sshd else "[127.0.0.1]:22 ssh-ed25519 AAAA"
    return clean_env(
        GATEBOT_CACHE_DIR=str(w.cache),
        GITHUB_TOKEN=w.github_token.value,
        GATEBOT_SSH_KEY=w.ssh_key.value,
        GATEBOT_KNOWN_HOSTS=known,
        **extra,
    )


@pytest.fixture
def gemini(world: World) -> Iterator[FakeGemini]:
    server = FakeGemini(api_key=world.gemini_key.value).start()
    yield server
    server.stop()


@pytest.fixture
def github(world: World) -> Iterator[FakeGitHub]:
    server = FakeGitHub(token=world.github_token.value).start()
    yield server
    server.stop()


def _review(w: World, env: dict[str, str], *extra: str) -> Any:
    return run_gatebot(
        [
            *("review", "--repo", str(w.repo.path), "--out", str(w.out)),
            *("--cache-dir", str(w.cache), *extra),
        ],
        env,
        w.tmp,
    )


def test_review_without_a_model_key(world: World) -> None:
    proc = _review(world, _env(world), "--base", "main", "--head", "pr")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads((world.out / "verdict.json").read_text())["provider"] == "local"
    world.scan(proc)


def test_review_with_the_model(world: World, gemini: FakeGemini) -> None:
    env = _env(world, GEMINI_API_KEY=world.gemini_key.value, GOOGLE_GEMINI_BASE_URL=gemini.url)
    proc = _review(world, env, "--base", "main", "--head", "pr")
    assert gemini.stats.ok_calls >= 1, proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stderr  # the fake flags the eval( line
    world.scan(proc)


@pytest.mark.parametrize("fault", ["auth", "500"])
def test_review_when_the_model_fails(world: World, gemini: FakeGemini, fault: str) -> None:
    gemini.fail(fault, times=-1)
    (world.tmp / "gatebot.yml").write_text(
        yaml.safe_dump({"review": {"gemini": {"attempts": 1, "item_retries": 0}}})
    )
    env = _env(world, GEMINI_API_KEY=world.gemini_key.value, GOOGLE_GEMINI_BASE_URL=gemini.url)
    proc = _review(
        world, env, "--base", "main", "--head", "pr", "--config", str(world.tmp / "gatebot.yml")
    )
    assert gemini.stats.generate_calls >= 1
    assert proc.returncode in (0, 1, 3), proc.stderr
    world.scan(proc)


def test_review_inside_actions_posting_a_check(
    world: World, gemini: FakeGemini, github: FakeGitHub
) -> None:
    payload = json.loads((EVENTS / "pull_request_opened.json").read_text())
    payload["pull_request"]["base"]["sha"] = world.base
    payload["pull_request"]["head"]["sha"] = world.head
    event = world.tmp / "event.json"
    event.write_text(json.dumps(payload))
    runner = world.tmp / "runner"
    runner.mkdir()
    (runner / "step_summary.md").touch()
    (runner / "output.txt").touch()
    env = _env(
        world,
        GEMINI_API_KEY=world.gemini_key.value,
        GOOGLE_GEMINI_BASE_URL=gemini.url,
        GITHUB_ACTIONS="true",
        GITHUB_REPOSITORY="octo-org/inf-trader",
        GITHUB_API_URL=github.url,
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_STEP_SUMMARY=str(runner / "step_summary.md"),
        GITHUB_OUTPUT=str(runner / "output.txt"),
        GITHUB_RUN_ID="9001",
        GATEBOT_SARIF=str(runner / "gatebot.sarif"),
    )
    proc = _review(world, env)
    assert github.runs_for(world.head), f"no check run posted: {proc.stderr}"
    # Both secrets are masked first thing, before anything else is printed.
    first = proc.stdout.splitlines()[:2]
    assert sorted(first) == sorted(
        [f"::add-mask::{world.github_token.value}", f"::add-mask::{world.gemini_key.value}"]
    ), first
    bodies = {
        f"GitHub request {i} {r.method} {r.path}": json.dumps(r.body).encode()
        for i, r in enumerate(github.requests)
    }
    world.scan(proc, runner, extra_texts=bodies)


# ---- deploy and audit over the loopback sshd ---------------------------------------------------


def _deploy_config(w: World, gtw: GtwServer, service_port: int, **target: Any) -> Path:
    data = {
        "deploy": {
            "targets": {
                "inf": {
                    "host": "127.0.0.1",
                    "port": _sshd(w).port,
                    "user": _sshd(w).user,
                    "path": str(w.host_root),
                    "identity_env": "GATEBOT_SSH_KEY",
                    "known_hosts_env": "GATEBOT_KNOWN_HOSTS",
                    "python": sys.executable,
                    "venv_args": "--system-site-packages --without-pip",
                    "install": "true",
                    "connect_timeout_s": 5,
                    "lock_wait_s": 0,
                    **target,
                }
            }
        },
        "audit": {
            "min_free_disk_mb": 0,
            "imports": ["app.adapter"],
            "service": {"port": service_port},
            "gtw": {"endpoint": gtw.endpoint, "pings": 2, "budget_ms": 500},
        },
    }
    path = w.tmp / "deploy.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def service_port() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield int(sock.getsockname()[1])
    sock.close()


@pytest.mark.sshd
@pytest.mark.slow
def test_deploy_audit_rollback_and_releases(
    world: World, gtw: GtwServer, service_port: int
) -> None:
    cfg = _deploy_config(world, gtw, service_port)
    runner = world.tmp / "runner"
    runner.mkdir()
    (runner / "step_summary.md").touch()
    env = _env(world, GITHUB_STEP_SUMMARY=str(runner / "step_summary.md"))
    common = ["--target", "inf", "--config", str(cfg), "--repo", str(world.repo.path)]
    for ref in ("main", "pr"):
        proc = run_gatebot(
            # The audit runs once, on its own below (it is the slow part).
            [
                *("deploy", *common, "--ref", ref, "--no-audit"),
                *("--report", str(world.out / f"deploy-{ref}.json")),
            ],
            env,
            world.tmp,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        world.scan(proc, runner)
    proc = run_gatebot(
        [
            *("audit", *common, "--sha", "pr"),
            *("--report", str(world.out / "audit.json"), "--markdown", str(world.out / "a.md")),
        ],
        env,
        world.tmp,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((world.out / "audit.json").read_text())["passed"] is True
    world.scan(proc, runner)
    for args in (["rollback", *common, "--no-audit"], ["releases", *common]):
        proc = run_gatebot(args, env, world.tmp)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        world.scan(proc, runner)


@pytest.mark.sshd
def test_deploy_with_a_broken_key_names_the_setting_only(
    world: World, gtw: GtwServer, service_port: int
) -> None:
    cfg = _deploy_config(world, gtw, service_port)
    lines = world.ssh_key.value.splitlines()
    # Damage the middle of the key so it no longer parses; the rest is still the real secret.
    lines[2] = lines[2][::-1]
    broken = "\n".join(lines) + "\n"
    env = _env(world) | {"GATEBOT_SSH_KEY": broken}
    proc = run_gatebot(
        ["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(world.repo.path)],
        env,
        world.tmp,
    )
    assert proc.returncode != 0
    assert "deploy.targets.inf" in proc.stderr and "private key" in proc.stderr, proc.stderr
    world.scan(proc)
    assert not leaks([Secret("broken key", broken)], {"stderr": proc.stderr.encode()})


@pytest.mark.sshd
def test_deploy_to_an_impostor_host_leaks_nothing(
    world: World, gtw: GtwServer, service_port: int
) -> None:
    cfg = _deploy_config(world, gtw, service_port)
    impostor = _sshd(world).known_hosts.read_text().split()
    # A pinned key that is not the server's (the client's public key): a man in the middle.
    pub = (_sshd(world).root / "id_ed25519.pub").read_text().split()
    env = _env(world) | {"GATEBOT_KNOWN_HOSTS": f"{impostor[0]} {pub[0]} {pub[1]}\n"}
    proc = run_gatebot(
        ["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(world.repo.path)],
        env,
        world.tmp,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "host key" in proc.stderr.lower()
    world.scan(proc)


def test_the_scanner_finds_every_form() -> None:
    import base64

    key = Secret("SSH private key", new_private_key())
    token = Secret("GITHUB_TOKEN", _canary("ghs_LEAKCANARY", 26))
    middle_line = key.value.splitlines()[2]
    planted = {
        "plain": f"token={token.value}".encode(),
        "json": json.dumps({"key": key.value}).encode(),
        "one line of the key": f"debug: {middle_line}".encode(),
        "base64": base64.b64encode(b"Authorization: " + token.value.encode()),
        "base64 key": base64.b64encode(key.value.encode()),
    }
    for where, data in planted.items():
        assert leaks([key, token], {where: data}), f"the scanner missed the {where} form"
    assert not leaks([key, token], {"clean": b"nothing to see; ghs_ and BEGIN OPENSSH"})


@pytest.mark.sshd
@pytest.mark.slow
def test_doctor_and_metrics(
    world: World, gemini: FakeGemini, github: FakeGitHub, gtw: GtwServer, service_port: int
) -> None:
    cfg = _deploy_config(world, gtw, service_port)
    env = _env(
        world,
        GEMINI_API_KEY=world.gemini_key.value,
        GOOGLE_GEMINI_BASE_URL=gemini.url,
        GITHUB_API_URL=github.url,
        GITHUB_REPOSITORY="octo-org/inf-trader",
    )
    # A review first, so the history has a record for `metrics` to read back.
    proc = _review(world, env, "--base", "main", "--head", "pr")
    assert (world.out / "verdict.json").exists(), proc.stderr
    proc = run_gatebot(
        [
            *("doctor", "--repo", str(world.repo.path), "--config", str(cfg)),
            *("--json", "--timeout", "2"),
        ],
        env,
        world.tmp,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert json.loads(proc.stdout), proc.stderr
    world.scan(proc)
    for fmt in ("markdown", "json"):
        proc = run_gatebot(
            ["metrics", "--cache-dir", str(world.cache), "--format", fmt], env, world.tmp
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        world.scan(proc)
    assert github.requests or gemini.stats.generate_calls, "doctor reached neither service"
