"""The host program's source: the host-side modules joined into one text (runner side only).

The modules import each other as `from bot.deploy.hostside.X import ...` so the type checker
and the tests see ordinary modules. The shipped text is made from them for the host: those
imports dropped (every name is defined at the top level, in dependency order), and what only
the type checker reads left out — docstrings, annotations, the `typing` import, type aliases;
`typing.NamedTuple` classes become `collections.namedtuple` calls — so the host compiles and
starts less. tests/deploy/test_hostside.py checks that the text parses as Python 3.6, needs
nothing newer (vermin), defines no name twice and stays well under the 128 KiB a single
command-line argument may hold on Linux (it travels as `python -S -c SOURCE`).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import shlex
from functools import cache
from pathlib import Path

#: Dependency order: each module uses only names of those before it.
MODULES = (
    "protocol",
    "fsops",
    "envfile",
    "tree",
    "seed",
    "upload",
    "procs",
    "services",
    "linger",
    "serve",
)
_PACKAGE = "bot.deploy.hostside"
_HERE = Path(__file__).parent
_TYPING = "typing"

# Turns `class X(NamedTuple): a: int; b: str = "x"` into a namedtuple with that default.
_PRELUDE = """import collections


def _namedtuple(name, fields, defaults):
    cls = collections.namedtuple(name, fields)
    cls.__new__.__defaults__ = defaults or None
    return cls
"""


def module_source(name: str) -> str:
    return (_HERE / f"{name}.py").read_text(encoding="utf-8")


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


class _ForHost(ast.NodeTransformer):
    """What the host does not need: docstrings, annotations, typing."""

    def __init__(self, typing_names: set[str]) -> None:
        self.typing_names = typing_names

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        kept = [s for s in body if not _is_docstring(s)]
        return kept or [ast.Pass()]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.returns = None
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                a.annotation = None
        node.body = self._body(node.body)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        if bases == ["NamedTuple"]:
            fields = [s for s in node.body if isinstance(s, ast.AnnAssign)]
            names = " ".join(ast.unparse(f.target) for f in fields)
            defaults = [f.value for f in fields if f.value is not None]
            call = ast.Call(
                func=ast.Name("_namedtuple", ast.Load()),
                args=[
                    ast.Constant(node.name),
                    ast.Constant(names),
                    ast.Tuple([d for d in defaults if d is not None], ast.Load()),
                ],
                keywords=[],
            )
            return ast.Assign(targets=[ast.Name(node.name, ast.Store())], value=call, lineno=0)
        self.generic_visit(node)
        node.body = self._body(node.body)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        # `Listing = Dict[str, ...]`: a type alias, for the type checker only.
        value = node.value
        alias = isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
        if alias and value.value.id in self.typing_names:  # type: ignore[attr-defined]
            return None
        return node


def _for_host(text: str) -> str:
    tree = ast.parse(text)
    typing_names: set[str] = set()
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PACKAGE):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == _TYPING:
            typing_names.update(a.asname or a.name for a in node.names)
            continue
        body.append(node)
    tree.body = [s for s in body if not _is_docstring(s)]
    tree = ast.fix_missing_locations(_ForHost(typing_names).visit(tree))
    return ast.unparse(tree)


def build_program(sources: list[str]) -> str:
    return "\n\n".join([_PRELUDE, *(_for_host(text) for text in sources)]) + "\n"


@cache
def host_program() -> str:
    """The source run on the host (`python -S -c SOURCE serve`, or `... hash ROOT EXCL`).

    Building it (parsing and unparsing the modules) takes tens of milliseconds, which every
    deploy would pay at start-up: the text is kept in `__pycache__` beside the modules, under
    the hash of their sources and of this file (as Python keeps bytecode; when the directory is
    not writable it is built each time)."""
    sources = [module_source(m) for m in MODULES]
    digest = hashlib.sha256(
        "\0".join([Path(__file__).read_text(encoding="utf-8"), *sources]).encode()
    ).hexdigest()[:16]
    cached = _HERE / "__pycache__" / f"host_program-{digest}.txt"
    with contextlib.suppress(OSError):  # not built yet (or unreadable): built below
        return cached.read_text(encoding="utf-8")
    text = build_program(sources)
    # Not writable (a read-only install): the text is built each time, as said above.
    with contextlib.suppress(OSError):
        cached.parent.mkdir(exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, cached)
        for old in cached.parent.glob("host_program-*.txt"):
            if old != cached:
                old.unlink(missing_ok=True)
    return text


def agent_command(python: str) -> str:
    """The remote command that starts the host program with `python` (one shell word per
    argument; `exec`, so no shell stays between sshd and the program)."""
    return " ".join(shlex.quote(a) for a in ("exec", python, "-S", "-c", host_program(), "serve"))
