"""The host program kept warm between commands (bot/deploy/host/warm.py, `linger` in
bot/deploy/hostside/linger.py) over the loopback sshd: the next command reaches it without a
shell or a new interpreter, only with the key it was given, and falls back to a new program
whenever it cannot."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bot.deploy.host import warm
from bot.deploy.host.openssh import OpenSshConnector
from bot.deploy.hostside import linger as lingering
from bot.deploy.hostside.protocol import CHALLENGE, PROOF, Inspect
from bot.ssh.openssh import LoginSpec, Spawned, prepare_login, ssh_binary
from tests.deploy.conftest import DeployEnv, starts, warm_record
from tests.fakes.sshd import SshServer

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "requirements.txt": ""}


def test_the_next_command_reaches_the_lingering_program_without_starting_one(
    denv: DeployEnv, counted: Path
) -> None:
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    assert starts(counted) == 1
    record = warm_record(denv)
    assert record.exists() and oct(record.stat().st_mode & 0o777) == "0o600"
    assert oct(record.parent.stat().st_mode & 0o777) == "0o700"
    port = json.loads(record.read_text())["port"]
    denv.rb.commit({"app.py": "print(2)\n"})
    second = denv.deploy()
    assert second.ok, second.error
    back = denv.rollback()
    assert back.ok and denv.live() == first.release
    assert starts(counted) == 1  # both went to the lingering copy: no shell, no interpreter
    assert json.loads(record.read_text())["port"] == port


def test_a_wrong_key_is_refused_and_the_command_starts_a_program(
    denv: DeployEnv, counted: Path
) -> None:
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    record = warm_record(denv)
    data = json.loads(record.read_text())
    record.write_text(json.dumps({"port": data["port"], "key": "00" * warm.KEY_BYTES}))
    denv.rb.commit({"app.py": "print(2)\n"})
    r = denv.deploy()
    assert r.ok, (r.error, denv.out.getvalue())
    assert starts(counted) == 2  # the copy refused the key: a new program served the deploy
    assert json.loads(record.read_text())["key"] != "00" * warm.KEY_BYTES


def test_a_connection_that_cannot_answer_the_challenge_is_never_served(
    denv: DeployEnv, counted: Path
) -> None:
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    port = json.loads(warm_record(denv).read_text())["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # another local user
        line = s.makefile("rb").readline()
        assert line.startswith(CHALLENGE)
        s.sendall(b"0" * 64 + b"\n")
        rest = s.recv(100)
    assert rest == b"denied\n"


def test_the_proof_leaves_with_the_greeting_in_one_write(denv: DeployEnv, counted: Path) -> None:
    """Two small writes in a row on TCP wait for the first one's acknowledgement (Nagle), which
    the other end delays up to 40 ms: the copy sends its proof and its greeting as one."""
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    data = json.loads(warm_record(denv).read_text())
    key = bytes.fromhex(data["key"])
    with socket.create_connection(("127.0.0.1", data["port"]), timeout=5) as s:
        challenge = b""
        while not challenge.endswith(b"\n"):
            challenge += s.recv(200)
        nonce = bytes.fromhex(challenge[len(CHALLENGE) :].decode().strip())
        mine = os.urandom(lingering.NONCE_BYTES)
        s.sendall(lingering.client_proof(key, nonce) + b" " + mine.hex().encode() + b"\n")
        first = s.recv(4096)  # at once: what the first write held
    proof, hello, rest = first.split(b"\n", 2)
    assert proof == PROOF + lingering.server_proof(key, mine, nonce)
    assert hello.startswith(b"hello ") and rest == b""


def test_when_the_lingering_program_is_gone_the_command_starts_one(
    denv: DeployEnv, counted: Path
) -> None:
    denv.overrides["ssh_persist_s"] = 1
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    port = json.loads(warm_record(denv).read_text())["port"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # it exits about a second after its last connection
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the lingering program did not exit after ssh_persist_s")
    denv.rb.commit({"app.py": "print(2)\n"})
    r = denv.deploy()
    assert r.ok, r.error
    assert starts(counted) == 2


def test_a_kept_connection_gone_before_the_copy_is_kept_again(
    denv: DeployEnv, counted: Path
) -> None:
    """The kept connection can end before the lingering copy does (a fallback that used a
    connection of its own, a master that timed out first). Going to the copy then would take
    a new connection on every command; instead the next one starts a program on a connection
    that is kept, and the command after it is warm again."""
    from bot.config.deploy import TargetConfig

    denv.rb.commit(BASE)
    assert denv.deploy().ok
    target = TargetConfig.model_validate(denv.target_data())
    ssh = ssh_binary()
    assert ssh is not None
    login = prepare_login("inf", LoginSpec.of(target), {}, denv.tmp, ssh)
    login.close()
    assert login.control_path is not None
    control = Path(login.control_path)
    assert control.is_socket()
    subprocess.run(
        [ssh, "-o", f"ControlPath={control}", "-O", "exit", "gatebot-test"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    deadline = time.monotonic() + 10
    while control.exists():
        assert time.monotonic() < deadline, "the kept connection did not end"
        time.sleep(0.05)
    assert warm_record(denv).exists()  # the copy lingers on
    denv.rb.commit({"app.py": "print(2)\n"})
    assert denv.deploy().ok
    assert control.is_socket()  # kept again
    assert starts(counted) == 2
    denv.rb.commit({"app.py": "print(3)\n"})
    assert denv.deploy().ok
    assert starts(counted) == 2  # warm again: through the kept connection to the new copy


def test_nothing_lingers_with_ssh_persist_s_0(denv: DeployEnv, counted: Path) -> None:
    denv.overrides["ssh_persist_s"] = 0
    denv.rb.commit(BASE)
    assert denv.deploy().ok
    denv.rb.commit({"app.py": "print(2)\n"})
    assert denv.deploy().ok
    assert starts(counted) == 2  # each deploy started its own program
    ssh = ssh_binary()
    assert ssh is not None
    login = prepare_login(
        "inf", LoginSpec.of(denv.sshd.target(denv.root, ssh_persist_s=0)), {}, denv.tmp, ssh
    )
    try:
        assert warm.record_for(login, str(counted.parent / "python")) is None
    finally:
        login.close()


def test_a_refused_channel_whose_pipe_outlives_it_does_not_stall_the_next_connection(
    sshd: SshServer, tmp_path: Path
) -> None:
    """OpenSSH's `ssh -W` through a kept connection hands its stdin/stdout to the master, which
    may close them after the client exited. The refused channel's pipe is then closed by us
    while the event loop still watches its descriptor number; the new connection's pipe,
    reusing that number, must still be read (it once went unwatched: a 35 s hang)."""
    target = sshd.target(tmp_path / "srv", ssh_persist_s=30)
    spec = LoginSpec.of(target)
    ssh = ssh_binary()
    assert ssh is not None
    connector = OpenSshConnector({}, tmp_path, ssh)

    async def go() -> bool:
        # Started inside the loop, as a deploy starts its `ssh` (descriptor numbers matter).
        login = prepare_login("inf", spec, {}, tmp_path, ssh)
        assert login.directory is not None
        stderr_path = login.directory / "stderr"
        # A stand-in for the refused `ssh -W`: it says no and exits, while a child it leaves
        # behind (the master, in real life) keeps its stdout open for a few seconds more.
        with stderr_path.open("wb") as err:  # as bot/ssh/openssh.py `spawn` starts `ssh`
            proc = subprocess.Popen(
                ["sh", "-c", "echo denied; sleep 4 & exit 0"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        kept = warm.Warm(1, b"\0" * warm.KEY_BYTES, tmp_path / "record.agent")
        spawned = Spawned(login, proc, stderr_path)
        connector.adopt("inf", warm.Ready(spec, target.python, target.path, spawned, kept))
        async with connector.connect("inf", target) as agent:
            answer = await asyncio.wait_for(agent.inspect(Inspect(str(tmp_path / "srv"))), 10)
            return answer.exists

    started = time.monotonic()
    assert asyncio.run(asyncio.wait_for(go(), 20)) is False
    assert time.monotonic() - started < 15
