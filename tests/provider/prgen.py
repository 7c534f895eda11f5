"""A generated repository and pull-request history for the review-gate scenarios and benchmark.

Deterministic (seeded). The base has realistic module sizes (150-700 lines of Python), docs,
tests and a few risky modules (payments, auth). The PR touches `files` paths with the mix a
real PR has: many small edits, some larger ones, a few risky changes, docs and new tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from tests.gitrepo import RepoBuilder

FEATURE = "feature"


def module(rng: random.Random, name: str, n_lines: int) -> list[str]:
    lines = [f'"""{name}: numeric helpers."""', "", "from __future__ import annotations", ""]
    i = 0
    while len(lines) < n_lines:
        lines += [
            "",
            f"def {name}_step_{i}(values: list[float], factor: float = {rng.randint(1, 9)}.0)"
            " -> float:",
            f'    """Scale and combine the values (step {i})."""',
            "    total = 0.0",
            "    for index, value in enumerate(values):",
            f"        total += value * factor / (index + {rng.randint(1, 5)})",
            f"    return round(total, {rng.randint(2, 6)})",
        ]
        i += 1
    return lines


def boundary(lines: list[str], near: int) -> int:
    """The index of a blank line before a top-level def at or after `near` (safe to insert)."""
    for i in range(near, len(lines) - 1):
        if lines[i] == "" and lines[i + 1].startswith("def "):
            return i
    return len(lines)


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


@dataclass
class Scenario:
    rb: RepoBuilder
    base: str  # tip of main the PR starts from
    head: str  # first push of the PR
    pr_paths: list[str]
    tree: dict[str, list[str]] = field(default_factory=dict)  # main's files as lines
    pr_files: dict[str, list[str]] = field(default_factory=dict)  # the PR's versions

    @property
    def path(self) -> Path:
        return self.rb.path

    def repush_one(self, path: str | None = None) -> tuple[str, str]:
        """Push a commit changing one more line of one PR file. Returns (path, new head)."""
        path = path or self.pr_paths[4]
        lines = list(self.pr_files[path])
        idx = next(i for i, ln in enumerate(lines) if ln.strip() == "total = 0.0")
        lines[idx] = "    total = 2.0"
        self.pr_files[path] = lines
        self.head = self.rb.commit({path: text(lines)}, branch=FEATURE, message="fix review")
        return path, self.head

    def rebase_onto_newer_main(self) -> str:
        """main gains an unrelated commit; the PR is recreated on top with the same files."""
        untouched = next(p for p in sorted(self.tree) if p not in self.pr_files)
        lines = [*self.tree[untouched], "", "# a change on main"]
        self.tree[untouched] = lines
        self.base = self.rb.commit({untouched: text(lines)}, message="main moves on")
        self.head = self.rb.commit(
            {p: text(ls) for p, ls in self.pr_files.items()},
            branch=FEATURE,
            parents=[self.base],
            message="the PR, rebased",
        )
        return self.head


def build(root: Path, *, files: int = 50, base_modules: int = 80, seed: int = 7) -> Scenario:
    rng = random.Random(seed)
    tree: dict[str, list[str]] = {}
    for i in range(base_modules):
        tree[f"src/pkg{i % 8}/mod{i}.py"] = module(rng, f"mod{i}", rng.randint(150, 700))
    tree["src/payments/ledger.py"] = module(rng, "ledger", 300)
    tree["src/auth/session.py"] = module(rng, "session", 250)
    for i in range(6):
        tree[f"docs/guide{i}.md"] = [f"# Guide {i}", ""] + [
            f"Paragraph {j} explains step {j} of the workflow." for j in range(60)
        ]
    for i in range(10):
        tree[f"tests/test_mod{i}.py"] = [f"from src.pkg{i % 8}.mod{i} import *", ""] + [
            f"def test_{j}() -> None:\n    assert mod{i}_step_{j}([1.0], 1.0) >= 0"
            for j in range(20)
        ]
    tree["README.md"] = ["# Generated project", "", "Used by the review-gate benchmark."]

    rb = RepoBuilder(root)
    base = rb.commit({p: text(ls) for p, ls in tree.items()}, message="base")

    modules = sorted(p for p in tree if p.startswith("src/pkg"))
    rng.shuffle(modules)
    # the mix of a real PR: 60% small edits, 20% larger ones, 8% risky, 8% docs, 4% new tests
    n_small, n_medium = round(files * 0.6), round(files * 0.2)
    n_risky, n_docs = round(files * 0.08), round(files * 0.08)
    n_new = max(files - n_small - n_medium - n_risky - n_docs, 0)
    pr: dict[str, list[str]] = {}
    for p in modules[:n_small]:
        lines = list(tree[p])
        for k in (len(lines) // 4, 3 * len(lines) // 4):  # two small hunks, far apart
            idx = next(i for i in range(k, len(lines)) if lines[i].strip() == "total = 0.0")
            lines[idx] = "    total = 1.0"
        pr[p] = lines
    for p in modules[n_small : n_small + n_medium]:
        lines = list(tree[p])
        mid = boundary(lines, len(lines) // 2)
        name = Path(p).stem
        lines[mid:mid] = module(rng, f"{name}_extra", 24)[4:]
        pr[p] = lines
    risky = ["src/payments/ledger.py", "src/auth/session.py"]
    risky += modules[n_small + n_medium : n_small + n_medium + max(n_risky - 2, 0)]
    for p in risky[:n_risky]:
        lines = list(tree[p])
        mid = boundary(lines, len(lines) // 2)
        lines[mid:mid] = [
            "",
            "def run_tool(cmd: list[str]) -> str:",
            "    import subprocess",
            "",
            "    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout",
        ]
        pr[p] = lines
    for i in range(n_docs):
        p = f"docs/guide{i % 6}.md" if i < 6 else f"docs/extra{i}.md"
        lines = list(tree.get(p, [f"# Extra {i}", ""]))
        lines[5:5] = ["A new paragraph about the release process and how to read the report."]
        pr[p] = lines
    for i in range(n_new):
        p = f"tests/test_new{i}.py"
        pr[p] = [f"def test_new_{i}_{j}() -> None:\n    assert {j} + 1 > {j}" for j in range(20)]

    head = rb.commit({p: text(ls) for p, ls in pr.items()}, branch=FEATURE, parents=[base])
    return Scenario(rb, base, head, sorted(pr), tree, pr)
