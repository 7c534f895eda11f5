"""Doctor checks per deploy target, through the audit's own layer functions.

network (TCP to the SSH port) → ssh (pinned host key, key auth) → host (Python, disk) →
path writable → gtw (the ZeroMQ round trip from the host). The audit layers are called as they
are, with the doctor's short time limits; only "path writable" is the doctor's own, because a
deploy needs it before there is anything for the audit to look at.

Before the first deploy there is no release venv to run the GTW probe with; the host's
interpreter is used instead, and a host Python without pyzmq is a warning, not a failure.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable

from bot.audit.connect_layers import check_network
from bot.audit.context import AuditContext, Outcome
from bot.audit.host_layer import check_host
from bot.audit.release_layers import check_release
from bot.audit.runtime_layers import check_gtw
from bot.config import GatebotConfig
from bot.config.deploy import TargetConfig
from bot.errors import ConfigError, HostKeyMismatch, TransportError
from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, Status
from bot.ssh import SSHSession, load_credentials, open_session
from bot.ssh.remote import RemoteTimeout, run_bounded

# Nearest existing ancestor of the path must be a writable directory (deploy creates the rest).
_WRITABLE = (
    'p="$1"; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
    'if [ -d "$p" ] && [ -w "$p" ]; then echo "writable $p"; else echo "readonly $p"; fi'
)


def _result(
    cid: str, title: str, status: Status, detail: str, fix: str | None, ms: float
) -> CheckResult:
    return CheckResult(cid, title, status, detail, fix if status in ("fail", "warn") else None, ms)


async def _layer(fn: Callable[[], Awaitable[Outcome]], timeout: float) -> tuple[Outcome, float]:
    start = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(fn(), timeout=timeout + 2)
    except (asyncio.TimeoutError, RemoteTimeout):
        outcome = Outcome("fail", f"no answer within {timeout:g}s")
    except TransportError as exc:
        outcome = Outcome("fail", exc.message)
    return outcome, (time.perf_counter() - start) * 1000


async def _path_writable(session: SSHSession, target: TargetConfig, timeout: float) -> Outcome:
    cmd = f"sh -c {shlex.quote(_WRITABLE)} sh {shlex.quote(target.path)}"
    res = await run_bounded(session, cmd, timeout=timeout)
    words = res.stdout.split()
    if len(words) >= 2 and words[0] == "writable":
        exists = "exists" if words[1] == target.path else f"will be created under {words[1]}"
        return Outcome("pass", f"{target.path} {exists}, writable by {target.user}")
    where = words[1] if len(words) >= 2 else target.path
    return Outcome("fail", f"{where} is not writable by {target.user}")


async def _imports_zmq(session: SSHSession, python: str, timeout: float) -> Outcome:
    res = await run_bounded(session, f"{shlex.quote(python)} -c 'import zmq'", timeout=timeout)
    return Outcome("pass" if res.ok else "fail", f"{python}: import zmq exit {res.exit_status}")


class _TargetDoctor:
    """The checks of one target, in order; each later check needs the earlier ones to pass."""

    def __init__(self, ctx: DoctorContext, config: GatebotConfig, name: str) -> None:
        self.name = name
        self.prefix = f"target.{name}"
        raw = config.deploy.targets[name]
        # The doctor's limits, not the deploy's patient ones.
        self.target = raw.model_copy(
            update={"connect_timeout_s": min(raw.connect_timeout_s, ctx.timeout_s)}
        )
        self.audit = config.audit.model_copy(
            update={"layer_timeout_s": min(config.audit.layer_timeout_s, ctx.timeout_s)}
        )
        self.ctx = ctx
        self.results: list[CheckResult] = []

    def add(
        self,
        layer: str,
        title: str,
        outcome: Outcome,
        fix: str | None,
        ms: float,
        status: Status | None = None,
    ) -> None:
        self.results.append(
            _result(
                f"{self.prefix}.{layer}",
                f"{self.name}: {title}",
                status or outcome.status,
                outcome.detail,
                fix,
                ms,
            )
        )

    def skip_rest(self, layers: list[tuple[str, str]], why: str) -> list[CheckResult]:
        for layer, title in layers:
            self.add(layer, title, Outcome("skip", why), None, 0)
        return self.results

    async def run(self) -> list[CheckResult]:
        t, name = self.target, self.name
        later = [("ssh", "SSH"), ("host", "host"), ("path", "deploy path"), ("gtw", "GTW")]
        outcome, ms = await _layer(lambda: check_network(t, name), t.connect_timeout_s)
        self.add(
            "network",
            "TCP",
            outcome,
            f"check deploy.targets.{name}.host/port, sshd on the host, firewalls from here",
            ms,
        )
        if outcome.status != "pass":
            return self.skip_rest(later, "skipped: network failed")
        try:
            creds = load_credentials(name, t, self.ctx.env, self.ctx.root)
        except ConfigError as exc:
            self.add(
                "ssh",
                "SSH",
                Outcome("fail", exc.message),
                "export the key and known_hosts the config names (GATEBOT_SSH_KEY, "
                "GATEBOT_KNOWN_HOSTS), as the Actions secrets provide them",
                0,
            )
            return self.skip_rest(later[1:], "skipped: ssh failed")
        start = time.perf_counter()
        try:
            async with open_session(name, t, creds) as session:
                ms = (time.perf_counter() - start) * 1000
                where = f"{t.user}@{t.host}:{t.port}"
                detail = f"{where}: host key matches the pinned entry, key auth accepted"
                self.add("ssh", "SSH", Outcome("pass", detail), None, ms)
                await self._on_host(session)
        except HostKeyMismatch as exc:
            ms = (time.perf_counter() - start) * 1000
            fix = (
                f"verify the host key out of band (ssh-keyscan -p {t.port} {t.host} vs. "
                "ssh-keygen -lf on the host), then update GATEBOT_KNOWN_HOSTS; never blindly"
            )
            self.add("ssh", "SSH", Outcome("fail", exc.message), fix, ms)
            return self.skip_rest(later[1:], "skipped: ssh failed")
        except TransportError as exc:
            ms = (time.perf_counter() - start) * 1000
            if any(r.id == f"{self.prefix}.ssh" for r in self.results):
                # The connection broke after the handshake: what ran keeps its result.
                lost = Outcome("fail", f"connection lost: {exc.message}")
                self.add("session", "SSH session", lost, "re-run the doctor", ms)
                return self.results
            self.add(
                "ssh",
                "SSH",
                Outcome("fail", exc.message),
                exc.hint or f"install the deploy public key for {t.user} on {t.host}",
                ms,
            )
            return self.skip_rest(later[1:], "skipped: ssh failed")
        return self.results

    async def _on_host(self, session: SSHSession) -> None:
        t, timeout = self.target, self.audit.layer_timeout_s
        actx = AuditContext(self.name, t, self.audit, session=session)
        outcome, ms = await _layer(lambda: check_host(actx), timeout)
        self.add(
            "host",
            "host",
            outcome,
            f"install Python >= {self.audit.min_python} (deploy.targets.{self.name}.python) "
            "and free disk space",
            ms,
        )
        outcome, ms = await _layer(lambda: _path_writable(session, t, timeout), timeout)
        self.add(
            "path",
            "deploy path",
            outcome,
            f"on the host: sudo install -d -o {t.user} {t.path}",
            ms,
        )
        await self._gtw(actx, timeout)

    async def _gtw(self, actx: AuditContext, timeout: float) -> None:
        if self.audit.gtw is None:
            self.add("gtw", "GTW", Outcome("skip", "no GTW configured (audit.gtw)"), None, 0)
            return
        release, ms = await _layer(lambda: check_release(actx), timeout)
        if release.status != "pass":
            # No release venv yet: the probe runs with the host's interpreter, if it has pyzmq.
            python = self.target.python
            has_zmq, ms = await _layer(lambda: _imports_zmq(actx.ssh(), python, timeout), timeout)
            if has_zmq.status != "pass":
                detail = f"no release deployed yet, and {python} on the host has no pyzmq"
                fix = "deploy once, then re-run the doctor (the release's venv carries pyzmq)"
                self.add("gtw", "GTW", Outcome("fail", detail), fix, ms, status="warn")
                return
            actx.venv_python = python
        outcome, ms = await _layer(lambda: check_gtw(actx), timeout)
        fix = "start the GTW, or fix audit.gtw.endpoint (it is dialled from the host)"
        self.add("gtw", "GTW", outcome, fix, ms)


async def _all(ctx: DoctorContext, config: GatebotConfig, names: list[str]) -> list[CheckResult]:
    batches = await asyncio.gather(*(_TargetDoctor(ctx, config, n).run() for n in names))
    return [r for batch in batches for r in batch]


def check_targets(ctx: DoctorContext, config: GatebotConfig, names: list[str]) -> list[CheckResult]:
    if not names:
        return []
    return asyncio.run(_all(ctx, config, names))
