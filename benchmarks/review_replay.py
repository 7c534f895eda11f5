"""Replay a pull request's history push by push through the review gate and compare it with the
naive before (one model call per changed file with its whole content, no cache).

The model is the loopback Gemini server of the tests (tests/fakes/gemini.py), reached by the
real google-genai client: it counts calls and tokens the way Gemini reports them. Prices are the
gate's price table. Nothing leaves 127.0.0.1.

    python3 benchmarks/review_replay.py                       # generated repository (default)
    python3 benchmarks/review_replay.py --repo PATH --range A..B          # one PR: A..B
    python3 benchmarks/review_replay.py --repo PATH --range A..B --merges # every merged PR

Prints, per push and in total: calls, input/output tokens (output with the thinking in it, on
both sides), $ cost, files per call and cache hit rate for the gate next to the naive baseline;
then the gate's overhead without model latency on a 1,000-file PR against `git diff --stat` of
the same range, and peak memory.
`--files`, `--base-modules`, `--pushes` and `--overhead-files` shrink the generated inputs for a
quick run (the test suite's); the published figures use the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.model import GatebotConfig  # noqa: E402
from bot.review.accounting import thoughts_per_call  # noqa: E402
from bot.review.cost import baseline_usage, cost_usd  # noqa: E402
from bot.review.models import Verdict  # noqa: E402
from bot.review.pipeline import run_review  # noqa: E402
from bot.review.providers import select_provider  # noqa: E402
from bot.review.tokens import (  # noqa: E402
    CalibrationTracker,
    load_calibration,
    save_calibration,
)
from bot.review.types import Batch, BatchOutcome, ModelPlan, Provider, Usage  # noqa: E402
from tests.fakes.gemini import FakeGemini  # noqa: E402
from tests.gitrepo import RepoBuilder  # noqa: E402
from tests.provider.prgen import FEATURE, build, module, text  # noqa: E402


class TimedProvider:
    """Delegates to the real provider and adds up the time spent waiting for the model."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache_seal = inner.cache_seal
        self.seconds = 0.0

    def plan_models(self, tiers: dict[str, str], fallback: list[str], cache_dir: Path) -> ModelPlan:
        return self.inner.plan_models(tiers, fallback, cache_dir)

    def review(self, batches: list[Batch]) -> list[BatchOutcome]:
        started = time.perf_counter()
        try:
            return self.inner.review(batches)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class Push:
    label: str
    files: int
    calls: int
    naive_calls: int
    input_tokens: int
    naive_input_tokens: int
    output_tokens: int  # thinking included, on both sides (billed as output)
    naive_output_tokens: int
    thoughts_tokens: int
    naive_thoughts_tokens: int
    cached_tokens: int
    cost_usd: float
    naive_cost_usd: float
    files_per_call: float
    cache_hit_rate: float
    gate_s: float  # run time without the time spent waiting for the model
    model_s: float
    git_s: float = 0.0  # `git diff --stat base...head` on the same range
    new_pairs: int = 0  # (path, old, new) pairs not seen in an earlier push: the floor's input
    verdict: str = ""


@dataclass
class Report:
    pushes: list[Push] = field(default_factory=list)
    overhead: dict[str, float] = field(default_factory=dict)

    def total(self, attr: str) -> float:
        return float(sum(getattr(p, attr) for p in self.pushes))


def git_diff_stat(repo: Path, base: str, head: str, repeat: int = 3) -> float:
    """Best-of-n wall time of `git diff --stat base...head` (the baseline a user knows)."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            ["git", "-C", str(repo), "diff", "--stat", f"{base}...{head}"],
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - t)
    return best


def naive_usage(repo: pygit2.Repository, base: str, head: str, thoughts: int) -> Usage:
    """The naive before's tokens: every changed, non-deleted text file, whole, one call each,
    each call thinking `thoughts` tokens (what the run's own calls did per call)."""
    head_c = repo.revparse_single(head).peel(pygit2.Commit)
    base_c = repo.revparse_single(base).peel(pygit2.Commit)
    mb = repo.merge_base(base_c.id, head_c.id)
    diff = repo.diff(repo[mb].peel(pygit2.Commit).tree, head_c.tree)
    diff.find_similar()
    texts: list[tuple[str, str]] = []
    for delta in diff.deltas:
        if delta.status == pygit2.enums.DeltaStatus.DELETED or delta.is_binary:
            continue
        blob = repo[delta.new_file.id]
        data = blob.data if isinstance(blob, pygit2.Blob) else b""
        if b"\0" in data[:8000]:
            continue
        texts.append((delta.new_file.path, data.decode("utf-8", "replace")))
    return baseline_usage(texts, thoughts_per_call=thoughts)


def pairs(verdict: Verdict, repo: pygit2.Repository) -> set[tuple[str, str, str]]:
    """(path, old blob, new blob) of every file the gate had to know about (not skipped)."""
    base = repo[pygit2.Oid(hex=verdict.base_sha)].peel(pygit2.Commit)
    head = repo[pygit2.Oid(hex=verdict.head_sha)].peel(pygit2.Commit)
    mb = repo[repo.merge_base(base.id, head.id)].peel(pygit2.Commit)
    wanted = {f.path for f in verdict.files if f.status != "skipped"}
    out: set[tuple[str, str, str]] = set()
    diff = repo.diff(mb.tree, head.tree)
    diff.find_similar()
    for delta in diff.deltas:
        if delta.new_file.path in wanted:
            out.add((delta.new_file.path, str(delta.old_file.id), str(delta.new_file.id)))
    return out


def run_push(
    label: str,
    repo_path: Path,
    base: str,
    head: str,
    cfg: GatebotConfig,
    cache: Path,
    server: FakeGemini,
    seen: set[tuple[str, str, str]],
) -> Push:
    env = {"GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.url}
    # As `gatebot review` does: the token calibration learned by earlier runs is used and kept.
    learned = load_calibration(cache)
    tracker = CalibrationTracker(learned)
    inner = select_provider(env, cfg.review, calibration=tracker)
    assert inner is not None
    provider = TimedProvider(inner)
    server.reset_stats()
    started = time.perf_counter()
    run = run_review(repo_path, base, head, cfg, cache, provider)
    wall = time.perf_counter() - started
    if tracker.value.samples > learned.samples:
        save_calibration(cache, tracker.value)
    v, m = run.verdict, run.verdict.metrics
    assert m.api_calls == server.stats.generate_calls, "metrics disagree with the server"
    repo = pygit2.Repository(str(repo_path))
    # The naive calls think as much per call as the gate's did (the configured level's
    # estimate when the gate made none), on the standard tier's model: the basis the gate
    # prices its baseline on (bot/review/accounting.py). Its tokens must give its dollars.
    standard = m.models["standard"]
    done = Usage(calls=m.api_calls, thoughts_tokens=m.thoughts_tokens)
    naive = naive_usage(repo, base, head, thoughts_per_call(done, standard, cfg.review))
    naive_usd = cost_usd(standard, naive, cfg.review.prices)
    assert naive_usd is not None and math.isclose(
        naive_usd, m.baseline_cost_usd, rel_tol=1e-4, abs_tol=2e-6
    ), f"naive tokens price at {naive_usd}, the gate's baseline says {m.baseline_cost_usd}"
    new = pairs(v, repo) - seen
    seen |= new
    return Push(
        label=label,
        files=m.files_total,
        calls=m.api_calls,
        naive_calls=m.baseline_api_calls,
        input_tokens=m.input_tokens,
        naive_input_tokens=naive.input_tokens,
        output_tokens=m.output_tokens,
        naive_output_tokens=naive.output_tokens,
        thoughts_tokens=m.thoughts_tokens,
        naive_thoughts_tokens=naive.thoughts_tokens,
        cached_tokens=m.cached_tokens,
        cost_usd=m.cost_usd,
        naive_cost_usd=m.baseline_cost_usd,
        files_per_call=m.files_per_call,
        cache_hit_rate=m.cache_hit_rate,
        gate_s=wall - provider.seconds,
        model_s=provider.seconds,
        git_s=git_diff_stat(repo_path, base, head),
        new_pairs=len(new),
        verdict=v.verdict,
    )


# -- histories ----------------------------------------------------------------------------


def generated_history(
    root: Path, files: int, base_modules: int = 80
) -> Iterator[tuple[str, Path, str, str]]:
    """The runbook's scenarios on a generated repository, then a push-by-push PR."""
    sc = build(root / "scenario", files=files, base_modules=base_modules)
    yield "first review", sc.path, "main", FEATURE
    path, _ = sc.repush_one()
    yield f"re-push ({path})", sc.path, "main", FEATURE
    sc.rebase_onto_newer_main()
    yield "rebase onto newer main", sc.path, "main", FEATURE
    yield "re-run", sc.path, "main", FEATURE


def generated_pr_pushes(
    root: Path, pushes: int = 8, modules: int = 40
) -> Iterator[tuple[str, Path, str, str]]:
    """A PR developed over several pushes: each push edits 1-6 files, some of them again."""
    import random

    rng = random.Random(11)
    rb = RepoBuilder(root / "pushes")
    tree = {
        f"src/pkg{i % 4}/mod{i}.py": module(rng, f"mod{i}", rng.randint(150, 600))
        for i in range(max(modules, 6))
    }
    base = rb.commit({p: text(ls) for p, ls in tree.items()}, message="base")
    paths = sorted(tree)
    rb.commit({}, branch=FEATURE, parents=[base], message="open the PR")
    for n in range(pushes):
        touched = rng.sample(paths[: 12 + 2 * n], rng.randint(1, 6))
        change = {}
        for p in touched:
            lines = tree[p]
            idx = rng.randrange(10, len(lines) - 10)
            lines[idx:idx] = [
                f"# push {n}: reviewed note {rng.randint(0, 999)}",
                f"LIMIT_{n} = {n}",
            ]
            change[p] = text(lines)
        rb.commit(change, branch=FEATURE, message=f"push {n}")
        yield f"push {n + 1} ({len(touched)} files)", rb.path, base, FEATURE


def real_history(repo: Path, rng: str, merges: bool) -> Iterator[tuple[str, Path, str, str]]:
    git = pygit2.Repository(str(repo))
    a, b = rng.split("..", 1)
    start = git.revparse_single(a).peel(pygit2.Commit).id
    end = git.revparse_single(b).peel(pygit2.Commit).id

    def first_parent(tip: pygit2.Oid, stop: pygit2.Oid) -> list[pygit2.Commit]:
        chain = []
        commit = git[tip].peel(pygit2.Commit)
        while commit.id != stop and commit.parents:
            chain.append(commit)
            commit = commit.parents[0]
        return list(reversed(chain))

    if not merges:
        for c in first_parent(end, start):
            yield f"{str(c.id)[:8]} {c.message.splitlines()[0][:40]}", repo, str(start), str(c.id)
        return
    for m in first_parent(end, start):
        if len(m.parents) < 2:
            continue
        main_side, pr_tip = m.parents[0].id, m.parents[1].id
        mb = git.merge_base(main_side, pr_tip)
        for c in first_parent(pr_tip, mb):
            label = f"PR {str(m.id)[:8]} push {str(c.id)[:8]}"
            yield label, repo, str(main_side), str(c.id)


# -- overhead -----------------------------------------------------------------------------


def thousand_file_overhead(
    root: Path, cfg: GatebotConfig, server: FakeGemini, files: int = 1000
) -> dict[str, float]:
    import random

    rng = random.Random(3)
    rb = RepoBuilder(root / "thousand")
    tree = {f"src/p{i % 20}/m{i}.py": module(rng, f"m{i}", 60) for i in range(files)}
    base = rb.commit({p: text(ls) for p, ls in tree.items()}, message="base")
    change = {}
    for p, lines in tree.items():
        new = list(lines)
        idx = next(i for i, ln in enumerate(new) if ln.strip() == "total = 0.0")
        new[idx] = "    total = 1.0"
        change[p] = text(new)
    rb.commit(change, branch=FEATURE, parents=[base])

    env = {"GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.url}
    cache = root / "thousand-cache"
    timings: dict[str, float] = {}
    for label in ("first", "rerun"):
        inner = select_provider(env, cfg.review)
        assert inner is not None
        provider = TimedProvider(inner)
        tracemalloc.start()
        t = time.perf_counter()
        run = run_review(rb.path, "main", FEATURE, cfg, cache, provider)
        wall = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        timings[f"{label}_gate_s"] = wall - provider.seconds
        timings[f"{label}_model_s"] = provider.seconds
        timings[f"{label}_calls"] = run.verdict.metrics.api_calls
        timings[f"{label}_python_peak_mb"] = peak / 2**20
    timings["git_diff_stat_s"] = git_diff_stat(rb.path, "main", FEATURE, repeat=5)
    timings["ratio_first"] = timings["first_gate_s"] / timings["git_diff_stat_s"]
    timings["ratio_rerun"] = timings["rerun_gate_s"] / timings["git_diff_stat_s"]
    timings["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


# -- output -------------------------------------------------------------------------------


def pct(before: float, after: float) -> str:
    return f"{(1 - after / before) * 100:5.1f}%" if before else "  n/a"


def print_table(title: str, pushes: list[Push], floor_line: bool, budget: int) -> None:
    print(f"\n## {title}\n")
    head = (
        f"{'push':34} {'files':>5} {'calls':>11} {'input tok':>15} {'output tok':>15} "
        f"{'of it thinking':>15} "
        f"{'$ gate / naive':>19} {'f/call':>6} {'hit':>5} {'gate s':>6} {'git s':>6}"
    )
    print(head)
    print("-" * len(head))
    for p in pushes:
        print(
            f"{p.label[:34]:34} {p.files:5d} {p.calls:4d} / {p.naive_calls:4d} "
            f"{p.input_tokens:6d} / {p.naive_input_tokens:6d} "
            f"{p.output_tokens:6d} / {p.naive_output_tokens:6d} "
            f"{p.thoughts_tokens:6d} / {p.naive_thoughts_tokens:6d} "
            f"{p.cost_usd:8.5f} / {p.naive_cost_usd:8.5f} "
            f"{p.files_per_call:6.1f} {p.cache_hit_rate:5.2f} {p.gate_s:6.2f} {p.git_s:6.3f}"
        )
    r = Report(pushes)
    calls, ncalls = r.total("calls"), r.total("naive_calls")
    cost, ncost = r.total("cost_usd"), r.total("naive_cost_usd")
    tin, ntin = r.total("input_tokens"), r.total("naive_input_tokens")
    print("-" * len(head))
    print(
        f"{'total':34} {'':5} {calls:4.0f} / {ncalls:4.0f} {tin:6.0f} / {ntin:6.0f} "
        f"{r.total('output_tokens'):6.0f} / {r.total('naive_output_tokens'):6.0f} "
        f"{r.total('thoughts_tokens'):6.0f} / {r.total('naive_thoughts_tokens'):6.0f} "
        f"{cost:8.5f} / {ncost:8.5f}"
    )
    sent = [p for p in pushes if p.calls]
    fpc = sum(p.files_per_call * p.calls for p in sent) / max(sum(p.calls for p in sent), 1)
    print(
        f"\nfewer calls: {pct(ncalls, calls)}   lower cost: {pct(ncost, cost)}   "
        f"input tokens vs naive: {tin / ntin * 100 if ntin else 0:.1f}%   "
        f"files per call: {fpc:.1f}"
    )
    if floor_line:
        # the floor: one call per push that brings a (path, old, new) pair not seen before
        floor = sum(1 for p in pushes if p.new_pairs)
        print(f"calls vs floor: {calls:.0f} / {floor} = {calls / floor if floor else 0:.2f}x")
        # A push bigger than one call's budget cannot go in one call: the floor at the budget is
        # the fewest calls that hold the tokens the gate sent (each call ≤ budget_tokens).
        at_budget = sum(max(1, math.ceil(p.input_tokens / budget)) for p in pushes if p.new_pairs)
        print(
            f"calls vs floor at the {budget:,}-token call budget: {calls:.0f} / {at_budget} = "
            f"{calls / at_budget if at_budget else 0:.2f}x"
        )


@contextmanager
def fake_gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repo", type=Path, help="a local git repository to replay")
    ap.add_argument("--range", dest="rng", help="A..B: the pushes are the commits after A up to B")
    ap.add_argument("--merges", action="store_true", help="replay every merged PR in the range")
    ap.add_argument("--files", type=int, default=50, help="files in the generated PR")
    # The sizes below are for quick runs (the test suite); the published figures use defaults.
    ap.add_argument(
        "--base-modules",
        type=int,
        default=80,
        help="modules in the generated repository (the push-by-push PR's has half as many)",
    )
    ap.add_argument("--pushes", type=int, default=8, help="pushes in the push-by-push PR")
    ap.add_argument(
        "--overhead-files", type=int, default=1000, help="files in the overhead run's PR"
    )
    ap.add_argument("--config", type=Path, help="a gatebot.yml to use (review: section)")
    ap.add_argument("--no-overhead", action="store_true", help="skip the overhead run")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if args.repo and not args.rng:
        ap.error("--repo needs --range A..B")
    for name in ("files", "base_modules", "pushes", "overhead_files"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")

    from bot.config.load import load_config

    cfg = load_config(args.config) if args.config else GatebotConfig()
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gatebot-bench-") as tmp, fake_gemini() as server:
        root = Path(tmp)
        histories: list[tuple[str, Iterator[tuple[str, Path, str, str]], bool]] = []
        if args.repo:
            histories.append(
                (
                    f"replay of {args.repo} {args.rng}",
                    real_history(args.repo, args.rng, args.merges),
                    True,
                )
            )
        else:
            histories.append(
                (
                    f"runbook scenarios: a {args.files}-file PR",
                    generated_history(root, args.files, args.base_modules),
                    False,
                )
            )
            histories.append(
                (
                    "a PR replayed push by push",
                    generated_pr_pushes(root, args.pushes, args.base_modules // 2),
                    True,
                )
            )
        for title, history, floor_line in histories:
            cache = root / f"cache-{len(report)}"
            seen: set[tuple[str, str, str]] = set()
            pushes = [
                run_push(label, path, base, head, cfg, cache, server, seen)
                for label, path, base, head in history
            ]
            print_table(title, pushes, floor_line, cfg.review.budget_tokens)
            report[title] = [asdict(p) for p in pushes]
        if not args.no_overhead:
            o = thousand_file_overhead(root, cfg, server, args.overhead_files)
            print(f"\n## gate overhead without model latency, {args.overhead_files:,}-file PR\n")
            print(f"git diff --stat main...feature  {o['git_diff_stat_s'] * 1000:8.1f} ms")
            for label in ("first", "rerun"):
                gate_ms, git_s = o[f"{label}_gate_s"] * 1000, o["git_diff_stat_s"]
                wait_ms = o[f"{label}_model_s"] * 1000
                print(
                    f"gate, {label:5} review            {gate_ms:8.1f} ms  "
                    f"({gate_ms / 1000 / git_s:.1f}x git; {o[f'{label}_calls']:.0f} calls, "
                    f"model wait {wait_ms:.0f} ms, "
                    f"python peak {o[f'{label}_python_peak_mb']:.0f} MB)"
                )
            print(f"process max RSS                 {o['max_rss_mb']:8.0f} MB")
            report[f"overhead_{args.overhead_files}_files"] = o
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cpu(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
