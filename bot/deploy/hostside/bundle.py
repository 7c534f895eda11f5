"""The host program's source: the host-side modules joined into one text (runner side only).

The modules import each other as `from bot.deploy.hostside.X import ...` so the type checker
and the tests see ordinary modules; in the bundle those imports are dropped and every name is
defined at the top level, in dependency order. tests/deploy/test_hostside.py checks that the
bundle parses as Python 3.6, defines no name twice and stays well under the 128 KiB a single
command-line argument may hold on Linux (it travels as `python -S -c SOURCE`).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

#: Dependency order: each module uses only names of those before it.
MODULES = ("protocol", "fsops", "tree", "seed", "upload", "procs", "serve")
_PACKAGE = "bot.deploy.hostside"
_HERE = Path(__file__).parent


def module_source(name: str) -> str:
    return (_HERE / f"{name}.py").read_text(encoding="utf-8")


def _without_own_imports(text: str) -> str:
    """`text` minus its `from bot.deploy.hostside... import` statements (whole lines)."""
    drop: set[int] = set()
    for node in ast.parse(text).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PACKAGE):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return "".join(
        line for n, line in enumerate(text.splitlines(keepends=True), 1) if n not in drop
    )


@cache
def host_program() -> str:
    """The source run on the host (`python -S -c SOURCE serve`, or `... hash ROOT EXCL`)."""
    return "\n\n".join(_without_own_imports(module_source(m)) for m in MODULES)
