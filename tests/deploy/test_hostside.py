"""The host program and its protocol: one definition of every operation, checked on both sides.

- every operation has a host handler typed with its request and answer, a HostAgent method,
  and an implementation in both hosts (SSH and in memory);
- the shipped bundle parses as Python 3.6, needs nothing newer (vermin), defines each name once
  and fits in one command-line argument; it serves requests as a local process (no sshd);
- the in-memory host answers a deploy's operations as the real host program does on disk.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import shutil
import subprocess
import sys
import time
import typing
from pathlib import Path

import pygit2
import pytest

from bot.deploy import stream
from bot.deploy.host.base import HostAgent
from bot.deploy.host.memory import MemoryHost, MemoryHostAgent
from bot.deploy.host.ssh import SshHostAgent
from bot.deploy.hostside import bundle, protocol, serve, upload
from bot.deploy.hostside import protocol as p
from bot.deploy.manifest import build_manifest
from tests.conftest import require
from tests.gitrepo import RepoBuilder


def test_every_operation_is_handled_and_typed_on_both_sides() -> None:
    for op in protocol.OPERATIONS:
        handler = upload.op_extract if op.name == "extract" else serve.HANDLERS[op.name]
        hints = typing.get_type_hints(handler)
        assert hints["req"] is op.request, op.name
        assert hints["return"] is op.answer, op.name
        method = getattr(HostAgent, op.name)
        assert getattr(method, "__isabstractmethod__", False), op.name
        for impl in (SshHostAgent, MemoryHostAgent):
            assert not getattr(getattr(impl, op.name), "__isabstractmethod__", False)
            assert typing.get_type_hints(getattr(impl, op.name))["return"] is op.answer
    assert set(serve.HANDLERS) | {"extract"} == set(protocol.BY_NAME)
    assert not inspect.isabstract(SshHostAgent) and not inspect.isabstract(MemoryHostAgent)


def test_the_bundle_is_python_3_6_and_defines_each_name_once() -> None:
    source = bundle.host_program()
    tree = ast.parse(source, feature_version=(3, 6))
    with pytest.raises(SyntaxError):
        ast.parse("if (n := 1):\n    pass\n", feature_version=(3, 6))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert "from bot." not in source and "import bot" not in source
    # Linux limits one argument to 128 KiB; the source travels as `python -S -c SOURCE`.
    assert len(source.encode()) < 96 * 1024


def test_the_host_modules_need_nothing_newer_than_python_3_6() -> None:
    """vermin reads the host modules as written (annotations evaluated, as 3.6 does at
    definition time); the two calls newer than 3.6 are behind version checks, marked
    `# novermin`. The bundle is derived from them by AST (test above: it parses as 3.6)."""
    vermin = shutil.which("vermin") or str(Path(sys.executable).with_name("vermin"))
    if not Path(vermin).exists():
        require("vermin to check the host program", "pip install -e '.[dev]'")
    here = Path(bundle.__file__).parent
    sources = [str(here / f"{m}.py") for m in bundle.MODULES]
    out = subprocess.run(
        [vermin, "-t=3.6-", "--violations", "--eval-annotations", "--no-tips", *sources],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_bundle_carries_only_what_the_host_runs() -> None:
    source = bundle.host_program()
    assert "typing" not in source and "NamedTuple" not in source
    assert '"""' not in source  # no docstrings: less to send and compile on every deploy
    assert "_namedtuple('LockAcquired', 'held owner since now', (None, None, None))" in source


def test_the_host_modules_type_check_for_the_oldest_python_mypy_knows() -> None:
    """mypy checks bot/ for 3.11 (pyproject); the host program also for 3.10, the oldest
    version mypy supports (vermin covers 3.6 above)."""
    here = Path(bundle.__file__).parent
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", "3.10", "--no-incremental", str(here)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _serve(lines: list[dict[str, object]]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-S", "-c", bundle.host_program(), "serve"],
        input="".join(json.dumps(x) + "\n" for x in lines),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout.splitlines()


def test_the_bundle_serves_typed_answers_as_a_local_process(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    out = _serve(
        [
            {"op": "inspect", "args": p.Inspect(str(root))._asdict()},
            {
                "op": "lock_acquire",
                "args": p.LockAcquire(str(root / "s"), str(root / "l"), "{}")._asdict(),
            },
            {"op": "no_such_op", "args": {}},
            {"op": "inspect", "args": {"root": str(root), "extra": 1}},
        ]
    )
    assert out[0].startswith("hello ") and json.loads(out[0][6:])["python"]
    status, _, body = out[1].partition(" ")
    assert status == "ok"
    answer = p.InspectAnswer(**json.loads(body))
    assert answer.exists is False and answer.current_kind == "missing"
    assert out[2].startswith("ok ") and json.loads(out[2][3:])["held"] is False
    assert out[3].startswith("error ") and "no_such_op" in out[3]
    assert out[4].startswith("error ") and "extra" in out[4]


# ---- the in-memory host against the real host program, operation by operation ---------------


def _real(req: object, chunks: list[bytes] | None = None) -> object:
    import io

    if isinstance(req, p.Extract):
        framed = b"".join(len(c).to_bytes(4, "big") + c for c in chunks or []) + p.FRAME_END
        return upload.op_extract(req, upload.FrameReader(io.BytesIO(framed)))
    return serve.HANDLERS[_op_name(req)](req)


def _op_name(req: object) -> str:
    return next(op.name for op in p.OPERATIONS if op.request is type(req))


FAST_VENV = ["--system-site-packages", "--without-pip"]
SWITCH_A = '{"event": "switch", "release": "A"}\n'


def _scenario(root: str, pieces: list[bytes], digest: str) -> list[object]:
    rel = f"{root}/releases"
    return [
        p.LockAcquire(f"{root}/.gatebot", f"{root}/.gatebot/lock", json.dumps({"run_id": "r1"})),
        p.LockAcquire(f"{root}/.gatebot", f"{root}/.gatebot/lock", json.dumps({"run_id": "r2"})),
        p.Seed(None, f"{rel}/A", [".venv"], False),
        p.Extract(f"{rel}/A", True),
        p.Link(f"{rel}/A/logs", "../../shared/logs", f"{root}/shared/logs"),
        p.Link(f"{rel}/A/.venv", "../../venvs/h", None),
        p.StartVenv(sys.executable, FAST_VENV, f"{root}/venvs/h", 60),
        p.BuildVenv(sys.executable, FAST_VENV, f"{root}/venvs/h", f"{rel}/A", "", 60),
        p.VerifyHash(
            f"{rel}/A",
            [".venv", "logs", ".gatebot-release.json"],
            [],
            False,
            True,
            digest,
        ),
        p.WriteFile(f"{rel}/A/.gatebot-release.json", json.dumps({"release": "A"}), True),
        p.Switch("releases/A", f"{root}/current"),
        p.Seed(f"{rel}/A", f"{rel}/B", [".venv", "logs", ".gatebot-release.json"], False),
        p.Hash(f"{rel}/B", []),
        p.Append(
            f"{root}/.gatebot/deploy.jsonl", SWITCH_A + '{"event": "prune", "release": "B"}\n'
        ),
        p.Remove([f"{rel}/B"]),
        p.LockRelease(f"{root}/.gatebot/lock", "r2"),
        p.LockRelease(f"{root}/.gatebot/lock", "r1"),
        p.Inspect(root),
    ]


def _comparable(answer: object) -> object:
    if isinstance(answer, p.LockAcquired):
        return answer._replace(since=None, now=None)
    if isinstance(answer, p.Verified):
        return answer._replace(hashed=0, hashed_bytes=0, reused=0)  # inode reuse is the host's
    return answer


def test_the_in_memory_host_answers_like_the_real_host_program(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    rb.commit(
        {"app.py": "print(1)\n", "bin/run": "#!/bin/sh\n", "ln": "app.py"},
        modes={"bin/run": 0o100755, "ln": 0o120000},
    )
    manifest = build_manifest(rb.path, "main")
    pieces = list(stream.chunks(pygit2.Repository(str(rb.path)), [], manifest.entries))
    real_root = str(tmp_path / "real")
    mem = MemoryHost("/mem")
    agent = MemoryHostAgent(mem, "inf", None)  # type: ignore[arg-type]

    async def on_memory(req: object) -> object:
        if isinstance(req, p.Extract):
            return await agent.extract(req, pieces, lambda n: None)
        return await getattr(agent, _op_name(req))(req)

    real = [_real(r, pieces) for r in _scenario(real_root, pieces, manifest.digest)]
    memory = [asyncio.run(on_memory(r)) for r in _scenario("/mem", pieces, manifest.digest)]
    for got, want in zip(memory, real, strict=True):
        assert _comparable(got) == _comparable(want)
    assert real[8].match is True  # type: ignore[attr-defined]
    assert (Path(real_root) / "venvs" / "h" / p.VENV_COMPLETE).exists()
    # B was removed: the log's line about it stays on the host (protocol.log_of_releases).
    assert real[-1].log == SWITCH_A  # type: ignore[attr-defined]


def test_the_log_answer_holds_the_lines_naming_a_release_on_the_host() -> None:
    text = (
        '{"event": "switch", "release": "R1"}\n'
        '{"event": "switch", "release": "R10"}\n'  # names R10, which merely contains R1
        '{"event": "rollback", "release": "R9", "previous": "R2"}\n'
        "a line broken by a crash R1\n"  # no quoted name: not a release's line
        '{"event": "bad", "release": "R2", "ok": false}'  # the last line, unterminated
    )
    assert p.log_of_releases(text, ["R1", "R2"]) == (
        '{"event": "switch", "release": "R1"}\n'
        '{"event": "rollback", "release": "R9", "previous": "R2"}\n'
        '{"event": "bad", "release": "R2", "ok": false}'
    )
    assert p.log_of_releases(text, []) == ""


# ---- a venv created while the upload runs (`start_venv`, then `build_venv`) ------------------


def _slow_python(tmp_path: Path) -> tuple[Path, Path]:
    """An "interpreter" whose venv creation never ends on its own; it notes its pid."""
    pid_file = tmp_path / "venv.pid"
    python = tmp_path / "slow-python"
    python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    python.chmod(0o755)
    return python, pid_file


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


class _Program:
    """The host program as a local process whose stdin stays open (a client that is there)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", bundle.host_program(), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().startswith(b"hello ")

    def ask(self, op: str, req: typing.NamedTuple) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": req._asdict()}).encode() + b"\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode()

    def leave(self) -> int:
        """Close the channel as a deploy that went away does; the program's exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def test_a_venv_nobody_took_is_stopped_and_removed_when_the_deploy_goes(tmp_path: Path) -> None:
    python, pid_file = _slow_python(tmp_path)
    venv_dir = tmp_path / "venvs" / "h"
    program = _Program()
    started = time.monotonic()
    answer = program.ask("start_venv", p.StartVenv(str(python), [], str(venv_dir), 600))
    assert answer == "ok " + json.dumps({"started": True}) + "\n"
    assert time.monotonic() - started < 30  # the host program did not wait for it
    pid = int(_wait_for(pid_file))
    assert not _gone(pid)  # running in the background
    assert program.leave() == 0
    assert _gone(pid), "the venv's process outlived the host program"
    assert not venv_dir.exists()


def test_a_started_venv_is_held_to_its_time_limit(tmp_path: Path) -> None:
    python, pid_file = _slow_python(tmp_path)
    venv_dir = tmp_path / "venvs" / "h"
    rel = tmp_path / "rel"
    rel.mkdir()
    program = _Program()
    program.ask("start_venv", p.StartVenv(str(python), [], str(venv_dir), 1))
    pid = int(_wait_for(pid_file))
    line = program.ask("build_venv", p.BuildVenv(str(python), [], str(venv_dir), str(rel), "", 1))
    status, _, body = line.partition(" ")
    answer = p.CommandAnswer(**json.loads(body))
    assert status == "ok" and answer.status == 124 and "timed out after 1s" in answer.output
    assert _gone(pid) and not venv_dir.exists()
    assert program.leave() == 0


def test_a_started_venv_is_taken_by_build_venv_then_installed_into(tmp_path: Path) -> None:
    venv_dir = tmp_path / "venvs" / "h"
    rel = tmp_path / "rel"
    rel.mkdir()
    program = _Program()
    program.ask("start_venv", p.StartVenv(sys.executable, FAST_VENV, str(venv_dir), 60))
    install = f'echo "$VIRTUAL_ENV" > {tmp_path / "installed"}'
    line = program.ask(
        "build_venv", p.BuildVenv(sys.executable, FAST_VENV, str(venv_dir), str(rel), install, 60)
    )
    assert line.startswith("ok ") and json.loads(line[3:])["status"] == 0, line
    assert (tmp_path / "installed").read_text().strip() == str(venv_dir)
    assert (venv_dir / p.VENV_COMPLETE).exists() and (venv_dir / "pyvenv.cfg").exists()
    assert program.leave() == 0
    assert (venv_dir / p.VENV_COMPLETE).exists()  # taken: the end of the program keeps it
