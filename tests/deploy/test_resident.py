"""The resident gatebot (bot/cli/resident.py, bot/cli/resident_server.py) as users meet it:
`python -m bot` processes against the loopback sshd. Each test has a HOME of its own, which
names a resident of its own; the fixture stops it at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DeployEnv

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}


class Runner:
    def __init__(self, denv: DeployEnv) -> None:
        self.denv = denv
        self.home = denv.tmp / "home"
        self.home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        self.env.update(HOME=str(self.home), CI="true")
        self.env.pop("GATEBOT_RESIDENT", None)

    def config(self, **target: object) -> Path:
        path = self.denv.tmp / "gatebot.yml"
        data = {"deploy": {"targets": {"inf": self.denv.target_data(**target)}}}
        path.write_text(yaml.safe_dump(data))
        return path

    def argv(self, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
        # A relative --repo: only the caller's working directory finds it.
        repo = os.path.relpath(self.denv.rb.path, self.denv.tmp)
        common = ["--target", "inf", "--config", str(self.denv.tmp / "gatebot.yml")]
        common += ["--repo", repo]
        return [sys.executable, *flags, "-m", "bot", *args, *common]

    def run(
        self, *args: str, flags: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, flags=flags),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.denv.tmp,
            timeout=120,
        )

    def first_deploy(self, **target: object) -> None:
        self.config(**target)
        self.denv.rb.commit(BASE)
        done = self.run("deploy", "--no-audit")
        assert done.returncode == 0, done.stderr

    @property
    def socket_path(self) -> Path:
        code = "from bot.cli import resident; print(resident.socket_path())"
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.denv.tmp,
            check=True,
        ).stdout
        return Path(out.strip())

    def resident_pids(self) -> list[int]:
        wanted = str(self.socket_path).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            if b"resident_server" in cmdline and wanted in cmdline:
                pids.append(int(proc.name))
        return pids

    def wait_up(self, timeout: float = 60.0) -> None:
        path = self.socket_path
        deadline = time.monotonic() + timeout
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no resident answered on {path}") from None
                time.sleep(0.05)
            finally:
                probe.close()


@pytest.fixture
def runner(denv: DeployEnv) -> Iterator[Runner]:
    r = Runner(denv)
    yield r
    for pid in r.resident_pids():
        os.kill(pid, signal.SIGTERM)


def imported_here(stderr: str) -> set[str]:
    """The modules `python -X importtime` says this process imported."""
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if "import time:" in line}


def test_the_next_deploy_command_runs_in_the_resident_with_the_callers_world(
    runner: Runner, denv: DeployEnv
) -> None:
    runner.config(env={"secrets": ["RESIDENT_MARKER"]})
    denv.rb.commit(BASE)
    first = runner.run("deploy", "--no-audit", env={"RESIDENT_MARKER": "cold"})
    assert first.returncode == 0, first.stderr
    assert len(runner.resident_pids()) == 1  # started by the cold run, before it ended
    runner.wait_up()

    denv.rb.commit({"app.py": "print(2)\n"})
    warm = runner.run(
        "deploy", "--no-audit", flags=("-X", "importtime"), env={"RESIDENT_MARKER": "warm"}
    )
    assert warm.returncode == 0, warm.stderr
    # This process imported neither the config models nor the deploy flow: the resident's
    # child ran the command, with this process's directory (the relative --repo), its
    # environment (the secret in the release's env file) and its stdout.
    assert not os.path.isabs(warm.args[-1])
    here = imported_here(warm.stderr)
    assert "bot.cli.resident" in here
    assert not {"pydantic", "bot.config.model", "bot.deploy.flow"} & here
    assert "deploy summary" in warm.stdout
    live = denv.live()
    env_file = denv.root / ".gatebot" / "env" / f"{live}.env"
    assert "RESIDENT_MARKER='warm'" in env_file.read_text()
    assert (denv.current / "app.py").read_text() == "print(2)\n"

    # A failing command fails the same way as in a process of its own: message and status.
    argv = [sys.executable, "-m", "bot", "unlock", "--target", "nope", "--config"]
    argv.append(str(denv.tmp / "gatebot.yml"))
    warm_failed, cold_failed = (
        subprocess.run(argv, capture_output=True, text=True, env=env, cwd=denv.tmp, timeout=60)
        for env in (runner.env, {**runner.env, "GATEBOT_RESIDENT": "0"})
    )
    assert warm_failed.returncode == cold_failed.returncode == 2
    assert warm_failed.stderr == cold_failed.stderr and "nope" in warm_failed.stderr


def slow_deploy_in_the_resident(runner: Runner, denv: DeployEnv) -> subprocess.Popen[str]:
    """A first deploy (which starts the resident), then a second whose install takes 30 s,
    running in the resident's child by the time this returns."""
    started = denv.tmp / "started"
    runner.first_deploy()
    runner.wait_up()
    runner.config(install=f"touch {started}; sleep 30")
    denv.rb.commit({"app.py": "print(2)\n", "requirements.txt": "# changed\n"})
    proc = subprocess.Popen(
        runner.argv("deploy", "--no-audit"),
        env=runner.env,
        cwd=denv.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


def test_a_signal_to_the_client_reaches_the_command_and_the_lock_is_released(
    runner: Runner, denv: DeployEnv
) -> None:
    proc = slow_deploy_in_the_resident(runner, denv)
    proc.send_signal(signal.SIGTERM)  # what a cancelled workflow sends to the step
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "interrupted by SIGTERM" in err
    assert not (denv.root / ".gatebot" / "lock").exists()
    assert (denv.current / "app.py").read_text() == "print(1)\n"


def test_a_killed_client_stops_its_command_which_releases_the_lock(
    runner: Runner, denv: DeployEnv
) -> None:
    proc = slow_deploy_in_the_resident(runner, denv)
    proc.kill()  # SIGKILL: the client can pass nothing on, but its connection closes
    proc.communicate(timeout=10)
    lock = denv.root / ".gatebot" / "lock"
    deadline = time.monotonic() + 20
    while lock.exists():
        assert time.monotonic() < deadline, "the command kept the deploy lock"
        time.sleep(0.05)
    assert (denv.current / "app.py").read_text() == "print(1)\n"


def test_no_resident_when_nothing_is_kept_or_it_is_turned_off(
    runner: Runner, denv: DeployEnv
) -> None:
    runner.first_deploy(ssh_persist_s=0)
    assert runner.resident_pids() == []
    runner.config()
    denv.rb.commit({"app.py": "print(2)\n"})
    done = runner.run("deploy", "--no-audit", env={"GATEBOT_RESIDENT": "0"})
    assert done.returncode == 0, done.stderr
    assert runner.resident_pids() == []


def test_the_resident_ends_after_its_idle_time_and_refuses_what_it_cannot_read(
    runner: Runner, denv: DeployEnv
) -> None:
    runner.first_deploy(ssh_persist_s=2)
    runner.wait_up()
    path = runner.socket_path
    for garbage in (b"", b"\x00\x00\x00\x05{not json", b"\xff" * 64):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            conn.sendall(garbage)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            try:  # refused: closed (reset, if it left bytes unread) without starting anything
                answer = conn.recv(100)
            except ConnectionResetError:
                answer = b""
            assert answer == b""
    served = runner.run("releases", flags=("-X", "importtime"))
    assert served.returncode == 0, served.stderr
    assert "bot.config.model" not in imported_here(served.stderr)
    deadline = time.monotonic() + 30
    while runner.resident_pids() or path.exists():
        assert time.monotonic() < deadline, "the resident outlived ssh_persist_s"
        time.sleep(0.1)


def test_changed_code_or_another_interpreter_setting_is_another_resident(
    runner: Runner, tmp_path: Path
) -> None:
    def ident(package_root: Path | None = None, **env: str) -> str:
        code = "import sys; sys.path[:0] = sys.argv[1:]; from bot.cli import resident; "
        code += "print(resident.identity())"
        roots = [str(package_root)] if package_root else []
        return subprocess.run(
            [sys.executable, "-c", code, *roots],
            capture_output=True,
            text=True,
            env={**runner.env, **env},
            cwd=tmp_path,
            check=True,
        ).stdout.strip()

    base = ident()
    assert ident(SOME_SECRET="changes nothing") == base
    assert ident(PYTHONHASHSEED="7") != base
    assert ident(LANG="C") != ident(LANG="C.UTF-8")
    copy = tmp_path / "copy"
    shutil.copytree(Path(__file__).resolve().parents[2] / "bot", copy / "bot")
    before = ident(copy)
    assert before != base  # another copy of gatebot's package
    changed = copy / "bot" / "deploy" / "flow.py"
    changed.write_text(changed.read_text() + "\n# edited\n")
    assert ident(copy) != before  # its code changed
