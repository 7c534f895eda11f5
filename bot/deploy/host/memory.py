"""The in-memory host: what the host program does (bot/deploy/hostside/), on a filesystem held in
memory, with failures you can inject. Deploy decisions are tested against it in milliseconds
(tests/deploy/test_decisions.py); the same matrix runs over sshd for the wire.

    host = MemoryHost("/srv/app")
    host.fail("switch", when="after")              # the link dies right after `current` moved
    host.commands = lambda call: CommandAnswer(1, "boom") if call.kind == "restart" else OK
    connector = MemoryConnector({"inf": host})

Like the real host program, it answers the typed requests of bot/deploy/hostside/protocol.py;
unlike it, it runs no command: `commands` decides what the install and restart answer, and
`audit_failures` what the audit finds. The host's state and the faults to inject are in
bot/deploy/host/memhost.py; this module answers the operations on it.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bot.audit.report import AuditReport, LayerResult
from bot.config.audit import LAYER_IDS
from bot.config.deploy import TargetConfig
from bot.deploy.host.base import AgentError, AuditRequest, HostAgent, OnOutput
from bot.deploy.host.memfs import Dir, File, Symlink, json_object, standby, unpack
from bot.deploy.host.memhost import OK, CommandCall, Fault, MemoryHost
from bot.deploy.host.memservices import (
    CommandKind,
    env_of,
    start_service,
    stop_service,
    wait_healthy,
    write_env,
)
from bot.deploy.hostside import protocol as p
from bot.errors import TransportError

# The host's state lives in bot/deploy/host/memhost.py; this module is the in-memory host's
# public face, so its names are here too.
__all__ = ["OK", "CommandCall", "Fault", "MemoryConnector", "MemoryHost", "MemoryHostAgent"]


class MemoryHostAgent(HostAgent):
    """One connection to a MemoryHost; dead once a fault cut it."""

    def __init__(self, host: MemoryHost, name: str, target: TargetConfig) -> None:
        self.host, self.fs = host, host.fs
        self.name, self.target = name, target
        self.python_version = host.python_version
        self.dead = False
        #: Venvs this connection started (start_venv) and no build_venv took yet.
        self.venvs_started: set[str] = set()

    def _lost(self, why: str) -> TransportError:
        self.dead = True
        return TransportError(f"{self.name}: connection to the host lost: {why}")

    def _begin(self, op: str) -> None:
        if self.dead:
            raise TransportError(f"{self.name}: the host agent channel is unusable (cut)")
        self.host.calls.append(op)
        self._inject(op, "before")

    def _inject(self, op: str, when: str) -> None:
        fault = self.host._fault(op, when)
        if fault is None:
            return
        if fault.kind == "cut":
            raise self._lost(f"{fault.message} ({when} {op})")
        raise AgentError(f"OSError: {fault.message}")

    def _end(self, op: str) -> None:
        self._inject(op, "after")

    async def inspect(self, req: p.Inspect) -> p.InspectAnswer:
        self._begin("inspect")
        fs, root = self.fs, req.root
        cur = posixpath.join(root, p.CURRENT_LINK)
        node = fs.get(cur)
        current = node.target if isinstance(node, Symlink) else None
        kind = "link" if current is not None else ("missing" if node is None else "other")
        releases = {}
        rel = posixpath.join(root, p.RELEASES_DIR)
        for name in fs.listdir(rel) if fs.isdir(rel) else []:
            if isinstance(fs.get(posixpath.join(rel, name)), Dir):
                releases[name] = json_object(
                    fs.read_text(posixpath.join(rel, name, p.RELEASE_MARKER))
                )
        ven = posixpath.join(root, p.VENVS_DIR)
        venvs = {
            n: fs.exists(posixpath.join(ven, n, p.VENV_COMPLETE))
            for n in (fs.listdir(ven) if fs.isdir(ven) else [])
        }
        lock = posixpath.join(root, p.LOCK_DIR)
        locked = fs.isdir(lock)
        owner = json_object(fs.read_text(posixpath.join(lock, p.LOCK_OWNER_FILE)))
        log = p.log_of_releases(fs.read_text(posixpath.join(root, p.DEPLOY_LOG)) or "", releases)
        answer = p.InspectAnswer(fs.isdir(root), current, kind, releases, venvs, locked, owner, log)
        self._end("inspect")
        return answer

    async def lock_acquire(self, req: p.LockAcquire) -> p.LockAcquired:
        self._begin("lock_acquire")
        self.fs.mkdirs(req.state)
        node = self.fs.get(req.lock)
        if isinstance(node, Dir):
            owner = json_object(self.fs.read_text(posixpath.join(req.lock, p.LOCK_OWNER_FILE)))
            answer = p.LockAcquired(True, owner, node.mtime, time.time())
        else:
            self.fs.put(req.lock, Dir(mtime=time.time()))
            self.fs.put(posixpath.join(req.lock, p.LOCK_OWNER_FILE), File(req.owner.encode()))
            answer = p.LockAcquired(False)
        self._end("lock_acquire")
        return answer

    async def lock_release(self, req: p.LockRelease) -> p.LockReleased:
        self._begin("lock_release")
        if not self.fs.isdir(req.lock):
            answer = p.LockReleased("absent")
        else:
            owner = json_object(self.fs.read_text(posixpath.join(req.lock, p.LOCK_OWNER_FILE)))
            if req.run_id != "*" and (owner or {}).get("run_id") != req.run_id:
                answer = p.LockReleased("other", owner)
            else:
                self.fs.remove(req.lock)
                answer = p.LockReleased("released", owner)
        self._end("lock_release")
        return answer

    def _listing(self, root: str, excl: list[str]) -> p.Listing:
        if not self.fs.isdir(root):
            raise AgentError(f"OSError: no such release directory: {root}")
        return self.fs.listing(root, excl)

    async def hash(self, req: p.Hash) -> p.HashAnswer:
        self._begin("hash")
        answer = p.HashAnswer(self._listing(req.root, req.excl))
        self._end("hash")
        return answer

    async def verify_hash(self, req: p.VerifyHash) -> p.Verified:
        self._begin("verify_hash")
        listing = self._listing(req.root, req.excl)
        files = [e for e in listing.values() if e[0] in (0o100644, 0o100755)]
        digest = p.lines_digest(p.entry_line(e[0], e[1], e[2], k) for k, e in listing.items())
        match = req.expect is not None and digest == req.expect
        answer = p.Verified(
            None if match else listing, match, len(files), sum(e[2] for e in files), 0
        )
        self._end("verify_hash")
        return answer

    async def seed(self, req: p.Seed) -> p.Seeded:
        self._begin("seed")
        self.fs.mkdirs(posixpath.dirname(req.new))
        ready = standby(req.live) if req.live else None
        if ready is not None and req.standby and isinstance(self.fs.get(ready), Dir):
            self.fs.rename(ready, req.new)
            answer = p.Seeded(0, True)
        elif req.live is None:
            self.fs.put(req.new, Dir())
            answer = p.Seeded(0, False)
        else:
            answer = p.Seeded(self.fs.copy_links(req.live, req.new, tuple(req.drop)), False)
        if req.live is not None and req.standby:
            releases = posixpath.dirname(req.live)
            for n in self.fs.listdir(releases):
                if n.startswith(p.STANDBY_PREFIX):
                    self.fs.remove(posixpath.join(releases, n))
        self._end("seed")
        return answer

    async def prepare_next(self, req: p.PrepareNext) -> p.Started:
        self._begin("prepare_next")
        started = self.fs.isdir(req.live)
        ready = standby(req.live)
        if started and self.fs.get(ready) is None:  # done at once: no background process here
            self.fs.copy_links(req.live, ready, tuple(req.drop))
        self._end("prepare_next")
        return p.Started(started)

    async def link(self, req: p.Link) -> p.Done:
        self._begin("link")
        if req.mkdir:
            self.fs.mkdirs(req.mkdir)
        self.fs.mkdirs(posixpath.dirname(req.path))
        self.fs.remove(req.path)
        self.fs.put(req.path, Symlink(req.target))
        self._end("link")
        return p.Done(True)

    def _run(
        self, kind: CommandKind, command: str, cwd: str, env: dict[str, str]
    ) -> p.CommandAnswer:
        call = CommandCall(kind, command, self.fs.resolve(cwd), env, self.host)
        self.host.ran.append(call)
        return self.host.commands(call)

    async def command(self, req: p.Command, on_output: OnOutput | None = None) -> p.CommandAnswer:
        self._begin("command")
        env = {**env_of(self.fs, req.env_file), **req.env}
        res = self._run("hook", req.command, req.cwd, env)
        if on_output is not None:
            for line in res.output.splitlines():
                on_output(line)
        self._end("command")
        return res

    async def write_env(self, req: p.WriteEnv) -> p.EnvWritten:
        self._begin("write_env")
        answer = write_env(self.fs, req)
        self._end("write_env")
        return answer

    async def start_service(self, req: p.StartService) -> p.ServiceStarted:
        self._begin("start_service")
        answer = start_service(self.host, req, self._run)
        self._end("start_service")
        return answer

    async def wait_healthy(self, req: p.WaitHealthy, on_output: OnOutput | None = None) -> p.Health:
        self._begin("wait_healthy")
        answer = wait_healthy(self.host, req, self._run)
        self._end("wait_healthy")
        return answer

    async def linger(self, req: p.Linger) -> p.Lingering:
        self._begin("linger")
        self._end("linger")
        return p.Lingering(0)  # nothing to keep: the next connection is in memory anyway

    async def stop_service(self, req: p.StopService) -> p.ServiceStopped:
        self._begin("stop_service")
        answer = stop_service(self.host, req, self._run)
        self._end("stop_service")
        return answer

    async def start_venv(self, req: p.StartVenv) -> p.Started:
        self._begin("start_venv")
        self.fs.remove(req.venv_dir)
        self.fs.mkdirs(req.venv_dir)
        self.venvs_started.add(req.venv_dir)
        self._end("start_venv")
        return p.Started(True)

    async def build_venv(self, req: p.BuildVenv) -> p.CommandAnswer:
        self._begin("build_venv")
        if req.venv_dir in self.venvs_started:
            self.venvs_started.discard(req.venv_dir)  # made meanwhile: the install goes on
        else:
            self.fs.remove(req.venv_dir)
            self.fs.mkdirs(req.venv_dir)
        env = {"VIRTUAL_ENV": req.venv_dir}
        res = self._run("install", req.install, req.release_dir, env) if req.install else OK
        if res.status != 0:
            self.fs.remove(req.venv_dir)
        else:
            self.fs.put(posixpath.join(req.venv_dir, p.VENV_COMPLETE), File(b"done"))
        self._end("build_venv")
        return res

    async def write_file(self, req: p.WriteFile) -> p.Done:
        self._begin("write_file")
        self.fs.remove(req.path)
        self.fs.put(req.path, File(req.text.encode("utf-8")))
        self._end("write_file")
        return p.Done(True)

    async def append(self, req: p.Append) -> p.Done:
        self._begin("append")
        self.fs.mkdirs(posixpath.dirname(req.path))
        node = self.fs.get(req.path)
        old = node.data if isinstance(node, File) else b""
        self.fs.nodes[posixpath.normpath(req.path)] = File(old + req.text.encode("utf-8"))
        self._end("append")
        return p.Done(True)

    async def switch(self, req: p.Switch) -> p.Done:
        self._begin("switch")
        if isinstance(self.fs.get(req.current), Dir):
            raise AgentError(f"OSError: {req.current} is a real directory, not a symlink")
        self.fs.nodes[posixpath.normpath(req.current)] = Symlink(req.link_target)
        self._end("switch")
        return p.Done(True)

    async def shell(self, req: p.Shell) -> p.CommandAnswer:
        self._begin("shell")
        res = self._run("restart", req.command, req.cwd, req.env)
        self._end("shell")
        return res

    async def remove(self, req: p.Remove) -> p.Done:
        self._begin("remove")
        # `background` on a real host only moves the deleting off the deploy's time: the paths
        # are gone from every listing at once either way, as here.
        for path in req.paths:
            self.fs.remove(path)
        self._end("remove")
        return p.Done(True)

    async def extract(
        self, req: p.Extract, chunks: Iterable[bytes], sent: Callable[[int], None]
    ) -> p.Extracted:
        self._begin("extract")
        data = bytearray()
        for chunk in chunks:
            data += chunk
            sent(len(chunk))
        answer = unpack(self.fs, req.root, bytes(data))
        self._end("extract")
        return answer

    async def audit(self, req: AuditRequest) -> AuditReport:
        self._begin("audit")
        live = self.host.live()
        marker = (
            json_object(self.fs.read_text(self.host.path(p.CURRENT_LINK, p.RELEASE_MARKER))) or {}
        )
        sha = req.expected_sha or str(marker.get("sha") or "") or None
        failures = self.host.audit_failures(live, sha)
        layers = [
            LayerResult(
                id=lid,
                status="fail" if lid in failures else "pass",
                duration_ms=0,
                detail=failures.get(lid, "in memory"),
            )
            for lid in LAYER_IDS
        ]
        report = AuditReport(
            target=self.name,
            ref=req.ref,
            sha=sha,
            release=live,
            started_at=datetime.now(timezone.utc),
            duration_s=0,
            passed=not failures,
            layers=layers,
        )
        self._end("audit")
        return report

    async def close(self) -> None:
        self.dead = True
        for venv_dir in self.venvs_started:  # as the host program stops those nobody took
            self.fs.remove(venv_dir)
        self.venvs_started.clear()


@dataclass
class MemoryConnector:
    """Connections to in-memory hosts by target name."""

    hosts: dict[str, MemoryHost]
    agents: list[MemoryHostAgent] = field(default_factory=list)

    @asynccontextmanager
    async def connect(self, name: str, target: TargetConfig) -> AsyncIterator[HostAgent]:
        host = self.hosts.get(name)
        if host is None:
            raise TransportError(f"{name}: cannot connect to {target.host}:{target.port}")
        host.calls.append("connect")
        fault = host._fault("connect", "before")
        if fault is not None:
            raise TransportError(f"{name}: cannot connect to {target.host}: {fault.message}")
        agent = MemoryHostAgent(host, name, target)
        self.agents.append(agent)
        try:
            yield agent
        finally:
            await agent.close()
