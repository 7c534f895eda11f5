"""A soak: 100+ reviews and 30+ deploys/rollbacks in a row with random faults (seeded), then
every invariant: no orphaned temp files or processes, cache and history consistent, the live
release healthy, the lock free. In-process calls (run_review, bot.deploy.flow) to stay fast."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from bot.config import GatebotConfig
from bot.metrics.history import HISTORY_FILE
from bot.review.pipeline import run_review
from bot.review.providers import select_provider
from bot.review.types import Provider
from tests.deploy.conftest import DeployEnv
from tests.fakes.gemini import FakeGemini
from tests.fakes.gtw import GtwServer
from tests.fakes.tcpproxy import TcpProxy
from tests.gitrepo import RepoBuilder

SEED = 20261128
REVIEWS = 100
DEPLOY_OPS = 30
MARKER = ".gatebot-release.json"
FAST = {
    "attempts": 2,
    "initial_delay_s": 0,
    "max_delay_s": 0,
    "jitter_s": 0,
    "timeout_s": 5,
    "item_retries": 1,
}
REVIEW_FAULTS = ("429", "500", "503", "truncated", "not_json", "empty", "omit_file")
TEMP_MARKS = (".tmp", "gatebot-tmp", ".partial")


def _temp_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if any(m in p.name for m in TEMP_MARKS)
    )


def _descendants(pid: int) -> list[str]:
    """Command lines of every live process under `pid` (the sshd serving the soak)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        p, pp, args = line.strip().split(None, 2) if len(line.split()) > 2 else (*line.split(), "")
        children.setdefault(int(pp), []).append((int(p), args))
    found, todo = [], [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            found.append(args)
            todo.append(child)
    return found


@pytest.mark.slow
def test_soak_reviews(tmp_path: Path, gemini_server: FakeGemini) -> None:
    rng = random.Random(SEED)
    rb = RepoBuilder(tmp_path / "repo")
    cache = tmp_path / "cache"
    config = GatebotConfig(review={"gemini": FAST})

    def provider() -> Provider:
        # One per run, as the CLI does: a provider that went down stays down for its run.
        p = select_provider(os.environ, config.review)
        assert p is not None
        return p

    base = rb.commit({f"m{i}.py": f"def f{i}(x):\n    return x\n" for i in range(3)})
    head = rb.commit({"m0.py": "def f0(x):\n    return x + 1\n"}, branch="f", parents=[base])
    kinds: dict[str, int] = {}
    degraded = 0
    started = time.monotonic()
    for n in range(REVIEWS):
        what = rng.choice(("rerun", "repush", "push"))
        if what == "push":  # a new commit on the branch
            path = f"m{rng.randrange(5)}.py"
            head = rb.commit({path: f"def g(x):\n    return x * {n}\n"}, branch="f", parents=[head])
        elif what == "repush":  # the same change again as a new commit (a rebase/amend)
            tip = rb.repo[head]
            head = rb.commit({}, branch="f", parents=[str(tip.parents[0].id)], message=f"amend {n}")
        kinds[what] = kinds.get(what, 0) + 1
        gemini_server.clear_faults()
        if rng.random() < 0.35:
            gemini_server.fail(rng.choice(REVIEW_FAULTS), times=rng.choice((1, -1)))
        rr = run_review(rb.path, "main", head, config, cache, provider())
        v = rr.verdict
        assert v.verdict in ("pass", "fail"), (n, v.verdict, v.degraded_reason)
        # Never silently green: a degraded run names what it did not cover and fails closed.
        if v.degraded:
            degraded += 1
            assert v.uncovered and v.verdict == "fail" and v.degraded_reason, n
            assert v.conclusion == "failure", n
        else:
            assert v.uncovered == [] and v.verdict == "pass", n
    took = time.monotonic() - started
    assert degraded > 0 and kinds.keys() == {"rerun", "repush", "push"}, (degraded, kinds)

    # The faults are over: one healthy run covers everything, the next asks nothing.
    gemini_server.clear_faults()
    final = run_review(rb.path, "main", head, config, cache, provider())
    assert not final.verdict.degraded and final.verdict.verdict == "pass", (
        final.verdict.degraded_reason
    )
    gemini_server.reset_stats()
    again = run_review(rb.path, "main", head, config, cache, provider())
    assert gemini_server.stats.generate_calls == 0 and not again.verdict.degraded
    assert again.verdict.metrics.files_cached == again.verdict.metrics.files_total

    history = [json.loads(x) for x in (cache / HISTORY_FILE).read_text().splitlines()]
    assert len(history) == REVIEWS + 2
    assert sum(1 for h in history if h.get("degraded")) == degraded, history[-1].keys()
    assert _temp_files(cache) == []
    assert took < 60, f"{REVIEWS} reviews took {took:.0f} s"


@pytest.mark.slow
@pytest.mark.sshd
def test_soak_deploys_and_rollbacks(denv: DeployEnv, gtw: GtwServer) -> None:
    rng = random.Random(SEED)
    proxy = TcpProxy(denv.sshd.port).start()
    try:
        pinned = denv.tmp / "proxy_known_hosts"
        pinned.write_text(f"[127.0.0.1]:{proxy.port} {denv.sshd.host_key_pub}\n")
        # A fresh connection per deploy: the proxy's faults apply to new connections.
        denv.overrides.update(
            port=proxy.port, known_hosts_file=str(pinned), keep_releases=4, ssh_persist_s=0
        )
        denv.rb.commit({"app.py": "print(0)\n", "requirements.txt": ""})
        first = denv.deploy()
        assert first.ok, first.error
        seen: dict[str, int] = {}
        started = time.monotonic()
        for n in range(DEPLOY_OPS):
            op = rng.choice(("deploy", "deploy", "cut", "bad-install", "rollback"))
            seen[op] = seen.get(op, 0) + 1
            before = denv.live()
            proxy.clear()
            denv.overrides["install"] = "true"
            if op == "rollback":
                r = denv.rollback()
                assert r.ok or (r.exit_code == 1 and r.error), r.error
                if not r.ok:
                    assert denv.live() == before
                continue
            files: dict[str, str | bytes | None] = {"app.py": f"print({n + 1})\n"}
            if op == "cut":
                files["blob.bin"] = os.urandom(200_000)
                proxy.cut_after(rng.randrange(20_000, 150_000))
            elif op == "bad-install":
                files["requirements.txt"] = f"# lock {n}\n"
                denv.overrides["install"] = "echo broken >&2; exit 9"
            denv.rb.commit(files)
            r = denv.deploy()
            if op == "deploy":
                assert r.ok, (n, r.error)
                assert (denv.current / "app.py").read_text() == f"print({n + 1})\n"
            elif op == "bad-install":
                assert not r.ok and r.exit_code == 1 and "failed (9)" in (r.error or "")
                assert denv.live() == before
            else:
                assert not r.ok and r.exit_code == 3 and r.error, (n, r.error)
            # After every operation: the lock is free and `current` is a complete release.
            assert not (denv.root / ".gatebot" / "lock").exists(), (n, op)
            assert (denv.current / MARKER).exists(), (n, op)
        assert seen.keys() >= {"deploy", "cut", "bad-install", "rollback"}, seen

        # End: a healthy deploy with the audit, then every invariant.
        proxy.clear()
        denv.overrides["install"] = "true"
        denv.rb.commit({"app.py": "print('final')\n"})
        cfg = denv.config(
            audit={
                "min_free_disk_mb": 1,
                "gtw": {"endpoint": gtw.endpoint, "timeout_ms": 400, "retries": 2},
                "layer_timeout_s": 10,
            }
        )
        final = denv.deploy(ctx=denv.ctx(cfg, audit=True))
        assert final.ok, final.error
        assert final.audit is not None
        assert all(x["status"] in ("pass", "skip") for x in final.audit["layers"]), final.audit
        took = time.monotonic() - started
    finally:
        proxy.stop()

    assert denv.live() == final.release and (denv.current / MARKER).exists()
    assert (denv.current / "app.py").read_text() == "print('final')\n"
    assert not (denv.root / ".gatebot" / "lock").exists()
    # The next release's seed, prepared in the background from the final live release, only.
    denv.wait_prepared([f".next-{final.release}"])
    assert _temp_files(denv.root / "releases") == []
    # Retention ran on the final deploy: no cut leftovers (releases without a marker) remain.
    releases = [denv.root / "releases" / r for r in denv.releases()]
    assert all((p / MARKER).exists() for p in releases), [p.name for p in releases]
    assert len(releases) <= 4 + 2
    events = denv.log_events()  # every line parsed
    assert events[-1]["event"] in ("audit", "prune", "switch"), events[-1]
    live_changes = [e for e in events if e["event"] in ("switch", "rollback") and e.get("ok")]
    assert live_changes[-1]["release"] == final.release
    # No agent, install or probe left running under the sshd that served all this.
    time.sleep(0.5)
    assert denv.sshd.proc is not None
    leftovers = [a for a in _descendants(denv.sshd.proc.pid) if "sshd" not in a.split()[0]]
    assert leftovers == [], leftovers
    assert took < 60, f"{DEPLOY_OPS} deploy operations took {took:.0f} s"
