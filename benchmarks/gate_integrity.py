"""Bounded work, side by side: hostile model answers and hostile diff shapes.

Every figure is `gatebot review` as a user runs it (a process: start-up and imports included),
timed with its peak resident memory (VmHWM, /proc/self/status), against a baseline in the same
run:
- answers: the loopback model answering normally, then a 30 MB answer with 200,000 findings
  (chunked: nothing announces its size), then the same as a 30 KB gzip body; the baseline is
  the normal answer;
- diff shapes: thousands of hunks in one file, one huge line, thousands of files, with the
  loopback model and without a key; the baseline is `git diff --stat` of the same range.
With `--baseline-tree DIR` (an older checkout, e.g. `git worktree add /tmp/before <commit>`)
each scenario also runs that gatebot, for before/after ratios.

    python3 benchmarks/gate_integrity.py
    python3 benchmarks/gate_integrity.py --baseline-tree /tmp/before --json out.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.gemini import FakeGemini  # noqa: E402
from tests.gitrepo import RepoBuilder  # noqa: E402
from tests.security.rawmodel import RawModel, Reply  # noqa: E402

# Peak memory of the child: VmHWM of its own process image (ru_maxrss would include the
# parent's size, kept across fork and exec).
_RUN = (
    "import atexit, re, runpy, sys\n"
    "target = sys.argv[1]\n"
    "def peak():\n"
    "    s = open('/proc/self/status').read()\n"
    "    open(target, 'w').write(re.search(r'VmHWM:\\s+(\\d+)', s).group(1))\n"
    "atexit.register(peak)\n"
    "sys.argv = ['gatebot', *sys.argv[2:]]\n"
    "runpy.run_module('bot', run_name='__main__')\n"
)
OLD_MODELS = ("gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro")


def gatebot(tree: Path, repo: Path, head: str, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    peak = tmp / "peak"
    args = ["review", "--repo", str(repo), "--base", "main", "--head", head]
    args += ["--out", str(tmp / "out"), "--cache-dir", str(tmp / f"cache-{time.time_ns()}")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(peak), *args],
        env={**clean, "PYTHONPATH": str(tree), **env},
        cwd=tmp,  # not this checkout: `python -c` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if not peak.exists():
        raise RuntimeError(f"gatebot from {tree} did not run: {done.stderr[-2000:]}")
    verdict = json.loads((tmp / "out" / "verdict.json").read_text())
    return {
        "seconds": seconds,
        "peak_mb": int(peak.read_text()) / 1024,
        "exit": done.returncode,
        "api_calls": verdict["metrics"]["api_calls"],
        "verdict": verdict["verdict"],
    }


def git_stat(repo: Path, head: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["git", "-C", str(repo), "diff", "--stat", f"main...{head}"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def flood_body(n: int = 200_000, blocks: int = 3) -> bytes:
    findings = [
        {"file": 1 + i % blocks, "line": 1, "end_line": 1, "severity": "low",
         "category": "flood", "message": f"finding {i} " + "x" * 80}
        for i in range(n)
    ]  # fmt: skip
    text = json.dumps({"reviewed": list(range(1, blocks + 1)), "findings": findings})
    body = {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 100},
    }
    return json.dumps(body).encode()


def answers(trees: dict[str, Path], tmp: Path) -> list[dict[str, Any]]:
    rb = RepoBuilder(tmp / "answers")
    base = rb.commit({f"m{i}.py": f"x = {i}\n" for i in range(3)})
    head = rb.commit({f"m{i}.py": f"x = {i + 1}\n" for i in range(3)}, branch="pr", parents=[base])
    flood = flood_body()
    bomb = gzip.compress(flood, 9)

    def chunks(data: bytes) -> list[bytes]:
        return [data[i : i + 262_144] for i in range(0, len(data), 262_144)]

    shapes = {
        "normal answer": lambda m, r, b: Reply(chunks=[json.dumps(b).encode()]),
        f"{len(flood) / 1e6:.0f} MB answer, 200,000 findings, chunked": lambda m, r, b: Reply(
            chunks=chunks(flood), length=False
        ),
        f"{len(bomb) / 1e3:.0f} KB gzip of it": lambda m, r, b: Reply(
            headers={"Content-Encoding": "gzip"}, chunks=[bomb]
        ),
    }
    rows = []
    for name, shape in shapes.items():
        model = RawModel(shape).start()
        model.logic.models |= set(OLD_MODELS)
        env = {"GEMINI_API_KEY": model.api_key, "GOOGLE_GEMINI_BASE_URL": model.url}
        try:
            for label, tree in trees.items():
                rows.append(
                    {"scenario": name, "tree": label, **gatebot(tree, rb.path, head, tmp, env)}
                )
        finally:
            model.stop()
    return rows


def shapes(
    trees: dict[str, Path], tmp: Path, with_model: bool, repeat: int
) -> list[dict[str, Any]]:
    cases: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    old = "".join(f"x{i} = {i}\n" for i in range(16_000))
    new = "".join(f"x{i} = {i}\n" if i % 8 else f"x{i} = {i} + 1\n" for i in range(16_000))
    cases["2,000 hunks in one file"] = ({"big.py": old}, {"big.py": new})
    cases["one 1.6 MB line"] = ({"a.js": "x\n"}, {"a.js": "var s = '" + "a" * 1_600_000 + "';\n"})
    files = {f"p{i // 100}/m{i}.py": f"v = {i}\n" for i in range(4_000)}
    cases["4,000 files"] = ({"README": "x\n"}, files)
    rows = []
    model = FakeGemini().start() if with_model else None
    if model is not None:
        model.models |= set(OLD_MODELS)
    env = {"GEMINI_API_KEY": model.api_key, "GOOGLE_GEMINI_BASE_URL": model.url} if model else {}
    try:
        for n, (name, (before, after)) in enumerate(cases.items()):
            rb = RepoBuilder(tmp / f"shape{n}-{with_model}")
            base = rb.commit(before)
            head = rb.commit(after, branch="pr", parents=[base])
            git = min(git_stat(rb.path, "pr") for _ in range(3))
            for label, tree in trees.items():
                # Best of `repeat`, alternating trees would be fairer still; load hits both.
                runs = [gatebot(tree, rb.path, head, tmp, env) for _ in range(repeat)]
                row = min(runs, key=lambda r: r["seconds"])
                row.update(scenario=name, tree=label, model=with_model, git_stat_s=git)
                rows.append(row)
    finally:
        if model is not None:
            model.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, help="an older checkout to compare with")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--repeat", type=int, default=3, help="runs per diff shape (best is shown)")
    ap.add_argument("--shapes-only", action="store_true", help="skip the hostile answers")
    args = ap.parse_args(argv)
    trees = {"this tree": ROOT}
    if args.baseline_tree:
        trees["baseline tree"] = args.baseline_tree.resolve()
    with tempfile.TemporaryDirectory(prefix="gatebot-integrity-") as tmp:
        rows = [] if args.shapes_only else answers(trees, Path(tmp))
        rows += shapes(trees, Path(tmp), with_model=False, repeat=args.repeat)
        rows += shapes(trees, Path(tmp), with_model=True, repeat=args.repeat)
    print(f"{'scenario':58} {'tree':14} {'time':>7} {'peak':>8} {'calls':>5} {'verdict':>7}")
    for r in rows:
        where = f"{r['scenario']}{' (model)' if r.get('model') else ''}"
        ratio = (
            f"  {r['seconds'] / r['git_stat_s']:.0f}x git diff --stat" if "git_stat_s" in r else ""
        )
        print(
            f"{where:58} {r['tree']:14} {r['seconds']:6.2f}s {r['peak_mb']:6.0f}MB "
            f"{r['api_calls']:5d} {r['verdict']:>7}{ratio}"
        )
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cpu(s))")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
