"""Floors that point one way: a module imports only modules of its own layer or below.

Layers, lowest first (the most specific prefix decides a module's layer). Every import counts,
also one inside a function (an import at the seam that needs it); only `if TYPE_CHECKING:`
imports, which never run, are left out. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: the floor: errors, config, contracts (verdict.json), git, SSH, the host program
    (
        "bot",
        "bot.errors",
        "bot.config",
        "bot.localstate",
        "bot.review.models",
        "bot.review.restored",  # untrusted restored state, read safely (standard library only)
        "bot.git",
        "bot.ssh",
        "bot.deploy.hostside",
    ),
    # 1: the run history and its figures (they read the contracts only)
    ("bot.metrics",),
    # 2: the review engine; the deploy's primitives and its host seam's interface
    (
        "bot.review",
        "bot.deploy",
        "bot.deploy.host.base",
        "bot.deploy.host.memfs",
    ),
    # 3: the audit (reads releases through the deploy's primitives)
    ("bot.audit",),
    # 4: the outlets to GitHub; the host seam's implementations (they run the audit)
    (
        "bot.github",
        "bot.deploy.host.program",
        "bot.deploy.host.ssh",
        "bot.deploy.host.openssh",
        "bot.deploy.host.connect",
        "bot.deploy.host.memory",
    ),
    # 5: the deploy's steps and orchestration
    (
        "bot.deploy.steps",
        "bot.deploy.flow",
        "bot.deploy.context",
        "bot.deploy.admin",
        "bot.deploy.history",
        "bot.deploy.rollout",
    ),
    # 6: what a person runs
    ("bot.onboarding", "bot.cli", "bot.__main__"),
)


def layer_of(module: str) -> int:
    best, level = "", -1
    for n, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, level = p, n
    assert level >= 0, f"{module} is in no layer of tests/test_floors.py"
    return level


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from bot.deploy import flow` imports the module bot.deploy.flow.
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m == "bot" or m.startswith("bot.")]


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        module = _module_name(path)
        mine = layer_of(module)
        for line, imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if layer_of(imported) > mine:
                upward.append(f"{module}:{line} imports {imported} (layer {layer_of(imported)})")
    assert upward == []


def test_the_check_sees_lazy_and_submodule_imports_but_not_type_only_ones() -> None:
    tree = ast.parse(
        "from bot.deploy import flow\n"
        "def f():\n    import bot.cli.main\n"
        "if TYPE_CHECKING:\n    from bot.audit.run import run_audit\n"
    )
    assert _imports(tree) == [(1, "bot.deploy.flow"), (3, "bot.cli.main")]
    assert layer_of("bot.deploy.flow") > layer_of("bot.deploy.layout") > layer_of("bot.git.diff")
