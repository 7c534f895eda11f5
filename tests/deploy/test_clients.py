"""The two SSH clients a deploy can use (bot/deploy/host/connect.py) over the loopback sshd:
OpenSSH's `ssh` command (the default where it is installed) and asyncssh in-process. Same
host program, same pinned keys, same errors."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.deploy.host.openssh import OpenSshConnector, ProcessChannel
from bot.deploy.hostside.bundle import agent_command, host_program
from bot.deploy.hostside.protocol import Inspect
from bot.deploy.hostside.upload import PIPE_BYTES
from bot.errors import ConfigError, HostKeyMismatch
from bot.ssh.openssh import LoginSpec, prepare_login, spawn, ssh_binary
from tests.deploy.conftest import DeployEnv
from tests.fakes.sshd import SshServer, free_port

pytestmark = pytest.mark.sshd

BASE = {"app.py": "print(1)\n", "lib/util.py": "X = 1\n", "requirements.txt": ""}


def _ssh() -> str:
    found = ssh_binary()
    assert found is not None, "OpenSSH's ssh client is installed with openssh-server"
    return found


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_deploy_change_and_rollback_over_each_client(denv: DeployEnv, client: str) -> None:
    denv.overrides["ssh_client"] = client
    denv.rb.commit(BASE)
    first = denv.deploy()
    assert first.ok, first.error
    denv.rb.commit({"lib/util.py": "X = 2\n"})
    second = denv.deploy()
    assert second.ok and second.files_sent == 1, second.error
    assert (denv.current / "lib/util.py").read_text() == "X = 2\n"
    back = denv.rollback()
    assert back.ok and denv.live() == first.release


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_a_key_the_host_does_not_know_is_refused(denv: DeployEnv, client: str) -> None:
    stranger = denv.tmp / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    denv.overrides.update(ssh_client=client, identity_file=None, identity_env="GATEBOT_SSH_KEY")
    denv.rb.commit(BASE)
    r = denv.deploy(ctx=denv.ctx(env={"GATEBOT_SSH_KEY": stranger.read_text()}))
    assert not r.ok and r.exit_code == 3 and r.error_type == "TransportError"
    assert "refused" in (r.error or "") and "PRIVATE KEY" not in (r.error or "")
    assert not denv.root.exists()


@pytest.mark.parametrize("client", ["openssh", "asyncssh"])
def test_an_unparseable_key_is_a_config_error_that_never_echoes_it(
    denv: DeployEnv, client: str
) -> None:
    denv.overrides.update(ssh_client=client, identity_file=None, identity_env="K")
    denv.rb.commit(BASE)
    junk = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET123notakey\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    r = denv.deploy(ctx=denv.ctx(env={"K": junk}))
    assert not r.ok and r.exit_code == 2 and r.error_type == "ConfigError", r.error
    assert "SECRET123" not in (r.error or "")


def test_wrong_pinned_host_key_over_asyncssh_too(denv: DeployEnv) -> None:
    other = denv.tmp / "other_known_hosts"
    pub = (denv.sshd.root / "id_ed25519.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{denv.sshd.port} {pub[0]} {pub[1]}\n")
    denv.overrides.update(known_hosts_file=str(other), ssh_client="asyncssh")
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.error_type == HostKeyMismatch.__name__ and "pinned" in (r.error or "")


def test_a_closed_port_is_a_transport_error(denv: DeployEnv) -> None:
    denv.overrides.update(port=free_port())
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.exit_code == 3 and "cannot connect" in (r.error or ""), r.error


def test_openssh_asked_for_but_not_installed_is_a_usage_error(
    denv: DeployEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    denv.overrides["ssh_client"] = "openssh"
    denv.rb.commit(BASE)
    r = denv.deploy()
    assert not r.ok and r.exit_code == 2 and "no `ssh` is on PATH" in (r.error or "")
    # auto falls back to asyncssh
    denv.overrides["ssh_client"] = "auto"
    assert denv.deploy().ok


def test_login_files_are_private_lf_terminated_and_removed(sshd: SshServer, tmp_path: Path) -> None:
    key = (sshd.client_key).read_text()
    loose = tmp_path / "key-readable-by-all"
    loose.write_text(key.replace("\n", "\r\n").rstrip("\r\n"))  # CRLF, no final newline
    loose.chmod(0o644)  # ssh refuses such a file; gatebot copies it into a private one
    target = sshd.target(tmp_path / "srv", identity_file=str(loose))
    login = prepare_login("inf", LoginSpec.of(target), {}, tmp_path, _ssh())
    assert login.directory is not None
    files = sorted(login.directory.iterdir())
    assert oct(login.directory.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    text = (login.directory / "id").read_text()
    assert "\r" not in text and text.endswith("-----\n")
    assert "-F" in login.argv and "/dev/null" in login.argv and login.argv[-2] == "--"
    directory = login.directory
    login.close()
    assert not directory.exists()


def _pipe_size(fd: int) -> int:
    return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


def test_the_upload_goes_through_wide_pipes_on_both_sides(sshd: SshServer, tmp_path: Path) -> None:
    """An upload passes gatebot → ssh and sshd → host program through pipes: both are grown
    from Linux's 64 KiB to 1 MiB, so the processes wake each other 16 times less often."""
    assert int(Path("/proc/sys/fs/pipe-max-size").read_text()) >= PIPE_BYTES
    target = sshd.target(tmp_path / "srv")
    login = prepare_login("inf", LoginSpec.of(target), {}, tmp_path, _ssh())
    spawned = spawn(login, agent_command(sys.executable))

    async def attached() -> None:
        # The deploy's channel to `ssh` (bot/deploy/host/openssh.py) widens both pipes.
        channel = await ProcessChannel.attach(spawned)
        assert (await channel.readline()).startswith(b"hello ")  # the host program runs
        proc = spawned.proc
        assert proc.stdin is not None and proc.stdout is not None
        assert _pipe_size(proc.stdin.fileno()) == PIPE_BYTES
        assert _pipe_size(proc.stdout.fileno()) == PIPE_BYTES
        channel.read_transport.close()
        channel.writer.close()

    try:
        asyncio.run(attached())
    finally:
        spawned.proc.kill()
        spawned.proc.wait()
        login.close()
    # The host program widens the pipe sshd writes its stdin into (here: ours, unwidened).
    host = subprocess.Popen(
        [sys.executable, "-S", "-c", host_program(), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert host.stdin is not None and host.stdout is not None
        assert _pipe_size(host.stdin.fileno()) < PIPE_BYTES
        assert host.stdout.readline().startswith(b"hello ")
        assert _pipe_size(host.stdin.fileno()) == PIPE_BYTES
    finally:
        host.kill()
        host.wait()


def test_hosts_and_users_that_could_be_read_as_options_are_refused(
    sshd: SshServer, tmp_path: Path
) -> None:
    for bad in ({"host": "-oProxyCommand=touch /tmp/x"}, {"host": "a b"}, {"user": "-x"}):
        target = sshd.target(tmp_path, **bad)
        with pytest.raises(ConfigError):
            prepare_login("inf", LoginSpec.of(target), {}, tmp_path, _ssh())


def test_prestarted_connection_is_taken_and_unused_ones_are_stopped(
    sshd: SshServer, tmp_path: Path
) -> None:
    target = sshd.target(tmp_path / "srv")
    connector = OpenSshConnector({}, tmp_path, _ssh())

    async def go() -> tuple[int, bool]:
        await connector.prestart("inf", target)
        await connector.prestart("other", target)
        started = connector._ready["inf"].spawned
        unused = connector._ready["other"].spawned
        async with connector.connect("inf", target) as agent:
            answer = await agent.inspect(Inspect(str(tmp_path / "srv")))
            assert answer.exists is False
            directory = started.login.directory
            assert directory is not None and directory.exists()
        assert started.proc.returncode is not None  # the ssh process ended with the agent
        await connector.aclose()
        assert unused.proc.returncode is not None and unused.login.directory is None
        return started.proc.pid, directory.exists()

    pid, still_there = asyncio.run(go())
    assert not still_there
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_or_empty_login_sources_fail_before_any_connection(
    sshd: SshServer, tmp_path: Path
) -> None:
    target = sshd.target(tmp_path, identity_file=None, identity_env="NOPE")
    with pytest.raises(ConfigError, match="NOPE"):
        prepare_login("inf", LoginSpec.of(target), {}, tmp_path, _ssh())
    target = sshd.target(tmp_path, known_hosts_file=None, known_hosts_env="KH")
    with pytest.raises(ConfigError, match="no entries"):
        prepare_login("inf", LoginSpec.of(target), {"KH": "# only a comment\n"}, tmp_path, _ssh())


# ---- a connection kept open between commands (ControlPersist) ---------------------------------


def _control_path(argv: list[str]) -> str | None:
    for option in argv:
        if option.startswith("ControlPath="):
            return option.split("=", 1)[1]
    return None


def test_a_kept_connection_is_reused_and_named_by_what_it_was_authenticated_with(
    sshd: SshServer, tmp_path: Path
) -> None:
    target = sshd.target(tmp_path / "srv", python=sys.executable, ssh_persist_s=30)
    spec = LoginSpec.of(target)
    login = prepare_login("inf", spec, {}, tmp_path, _ssh())
    path = _control_path(login.argv)
    assert path is not None and path != "none" and "ControlPersist=30s" in login.argv
    directory = Path(path).parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    login.close()
    connector = OpenSshConnector({}, tmp_path, _ssh())

    async def one() -> None:
        async with connector.connect("inf", target) as agent:
            await agent.inspect(Inspect(str(tmp_path / "srv")))

    asyncio.run(one())
    assert Path(path).is_socket()  # the master stays after the command ended
    check = subprocess.run(
        [_ssh(), "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "check", "x"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    asyncio.run(one())  # the next command goes through it
    # Another pinned host key (or key, or address) never reuses it.
    other_hosts = tmp_path / "other_known_hosts"
    other_hosts.write_text(
        sshd.known_hosts.read_text() + "# another pin\nexample.invalid " + sshd.host_key_pub + "\n"
    )
    other = prepare_login(
        "inf", dataclasses.replace(spec, known_hosts_file=str(other_hosts)), {}, tmp_path, _ssh()
    )
    assert _control_path(other.argv) not in (None, path)
    other.close()
    subprocess.run(
        [_ssh(), "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "exit", "x"],
        capture_output=True,
    )


def test_no_kept_connection_when_asked_or_when_its_directory_is_not_private(
    sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.ssh import openssh

    spec = LoginSpec.of(sshd.target(tmp_path, ssh_persist_s=0))
    login = prepare_login("inf", spec, {}, tmp_path, _ssh())
    assert _control_path(login.argv) == "none" and "ControlMaster=no" in login.argv
    login.close()
    shared = tmp_path / "shm"
    shared.mkdir()
    monkeypatch.setattr(openssh, "_memory_dir", lambda: shared)
    (shared / f"gatebot-ssh-{os.getuid()}").mkdir()
    os.chmod(shared / f"gatebot-ssh-{os.getuid()}", 0o755)  # noqa: S103 - others may read it
    login = prepare_login("inf", dataclasses.replace(spec, persist_s=60), {}, tmp_path, _ssh())
    assert _control_path(login.argv) == "none"
    login.close()


# ---- connections started before the config is validated -------------------------------------


def test_early_start_takes_only_plain_values_and_stops_what_is_not_used(
    sshd: SshServer, tmp_path: Path
) -> None:
    from bot.deploy.host.early import start_early, stop_early

    good = sshd.target(tmp_path / "srv").model_dump(exclude_none=True)
    data = {
        "deploy": {
            "targets": {
                "inf": good,
                "odd": {**good, "port": "22"},  # a string: validation decides, not the early start
                "other": {**good, "ssh_client": "asyncssh"},
            },
            "rollout": {"batch_size": 3},
        }
    }
    assert LoginSpec.early(good) == LoginSpec.of(sshd.target(tmp_path / "srv"))
    early = start_early(data, ["all"], {}, tmp_path)
    assert [e.name for e in early] == ["inf"]
    proc = early[0].ready.spawned.proc
    stop_early(early)
    assert proc.returncode is not None and early[0].ready.spawned.login.directory is None
    assert start_early({"deploy": "nonsense"}, ["all"], {}, tmp_path) == []
    stop_early(start_early(data, ["inf"], {}, tmp_path))


def test_an_invalid_config_leaves_no_early_connection_behind(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from bot.cli.main import main

    data = {"deploy": {"targets": {"inf": {**denv.target_data(), "not_a_key": 1}}}}
    cfg = denv.tmp / "gatebot.yml"
    cfg.write_text(yaml.safe_dump(data))
    before = _ssh_children()
    with pytest.raises(SystemExit) as info:
        main(["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)])
    assert info.value.code == 2 and "not_a_key" in capsys.readouterr().err
    assert _ssh_children() <= before


def _ssh_children() -> set[int]:
    """Our child processes running ssh."""
    out = subprocess.run(
        ["ps", "-o", "pid=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True
    )
    return {int(line.split()[0]) for line in out.stdout.splitlines() if line.split()[1] == "ssh"}


def test_the_host_program_text_is_kept_and_rebuilt_only_when_its_sources_change() -> None:
    from bot.deploy.hostside import bundle

    bundle.host_program.cache_clear()
    first = bundle.host_program()
    kept = list((Path(bundle.__file__).parent / "__pycache__").glob("host_program-*.txt"))
    assert len(kept) == 1 and kept[0].read_text() == first
    bundle.host_program.cache_clear()
    assert (
        bundle.host_program()
        == first
        == bundle.build_program([bundle.module_source(m) for m in bundle.MODULES])
    )
