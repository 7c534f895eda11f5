"""Formatting-only changes: where a change provably leaves behaviour alone (triage skips it).

Only where a parser or the format's specification makes whitespace insignificant: Python
(equal AST, every comment as written), JSON (equal tokens), YAML (line ends only: YAML
normalises line breaks). Shell, Makefiles, Haskell and anything unknown are
whitespace-significant, and whatever the language, the bytes must be valid UTF-8 without a NUL
byte, with the same BOM, shebang line and encoding declaration on both sides (docs/review.md,
"Triage").
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections import Counter, deque
from typing import Any

from bot.review import content
from bot.review.pysyntax import Parses
from bot.review.types import FileChange


def _same_tree(a: ast.AST, b: ast.AST) -> bool:
    # Breadth first, so the usual real change (a statement added or removed) is seen at the
    # top level at once instead of after dumping both trees. Positions are attributes, not
    # fields, so layout does not count. Types are compared at every node and leaf: 1 != 1.0.
    queue: deque[tuple[object, object]] = deque([(a, b)])
    while queue:
        x, y = queue.popleft()
        if type(x) is not type(y):
            return False
        if isinstance(x, ast.AST):
            queue.extend((getattr(x, f, None), getattr(y, f, None)) for f in x._fields)
        elif isinstance(x, list):
            assert isinstance(y, list)
            if len(x) != len(y):
                return False
            queue.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


_WORD = re.compile(r"\w+")


def _code_words(text: str) -> list[str]:
    # Comments cut naively at "#": imprecise inside strings, but the same on both sides.
    return _WORD.findall("\n".join(line.split("#", 1)[0] for line in text.splitlines()))


def _words(line: str) -> list[str]:
    return _WORD.findall(line.split("#", 1)[0])


def changed_words_equal(change: FileChange) -> bool:
    """The words of the removed lines and of the added lines are the same multiset.

    Unchanged lines are the same on both sides, so when the whole texts have the same code
    words (the precondition of python_ast_equal) so do the changed lines: this looks at the
    diff's few lines instead of the whole file, and rules out almost every real change.
    """
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    for hunk in change.hunks:
        for ln in hunk.lines:
            if ln.origin == "-":
                removed.update(_words(ln.content))
            elif ln.origin == "+":
                added.update(_words(ln.content))
    return removed == added


def python_ast_equal(old: str, new: str, parses: Parses | None = None) -> bool:
    """True when both parse and have the same AST (comments and layout do not count)."""
    # Parsing is the expensive part. Reformatting keeps every identifier, keyword and literal,
    # so different words mean a real change. (A wrong "different" here only costs a model call;
    # "equal" is always confirmed by the AST.)
    if _code_words(old) != _code_words(new):
        return False
    parses = parses or Parses()
    old_tree = parses.tree(old)
    new_tree = parses.tree(new) if old_tree is not None else None
    if old_tree is None or new_tree is None:
        return False
    try:
        return _same_tree(old_tree, new_tree)
    except RecursionError:
        return False


def _json_tokens(text: str) -> Any:
    """The parsed JSON with every number as written and every object as its ordered pairs."""

    def raw(kind: str) -> Any:
        return lambda s: (kind, s)

    def pairs(items: list[tuple[str, Any]]) -> Any:
        return ("object", tuple(items))

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(
        text,
        object_pairs_hook=pairs,
        parse_float=raw("float"),
        parse_int=raw("int"),
        parse_constant=constant,
    )


def json_equal(old: str, new: str) -> bool:
    """Both are JSON with the same tokens: only whitespace between tokens differs."""
    if "".join(old.split()) != "".join(new.split()):
        return False
    try:
        return bool(_json_tokens(old) == _json_tokens(new))
    except (ValueError, RecursionError):
        return False


def python_comments(text: str) -> list[str] | None:
    """Every comment of a Python text, exactly as written, in order (None: it does not tokenize).

    Comments are not in the AST, yet tools read them as instructions: PEP 723 inline script
    metadata (`# /// script` … `# dependencies = [...]`, which `uv run` and `pipx run` install),
    and the directives of type checkers, linters and scanners (`# type: ignore`, `# noqa`,
    `# nosec`, `# nosemgrep`, `# NOSONAR`, `# pragma: allowlist secret`, …). Any list of
    directive names misses one, and a space alone can start a PEP 723 block (`#///` is not one,
    `# ///` is): so a formatting-only change keeps every comment byte for byte (the space
    before an inline comment may change; that is not part of the comment token)."""
    if "#" not in text:
        return []
    try:
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        return [t.string for t in tokens if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError):
        return None


def _header(data: bytes) -> tuple[bytes, bytes | None, str | None]:
    first = data.split(b"\n", 1)[0] if data.startswith(b"#!") else None
    return content.bom(data), first, content.coding_cookie(data)


def formatting_only(
    path: str,
    old: bytes | None,
    new: bytes | None,
    parses: Parses | None = None,
    modes: tuple[int, int] = (content.REGULAR_MODE, content.REGULAR_MODE),
) -> str | None:
    """The reason when old → new provably changes only formatting, else None.

    Only where a parser or the format's specification proves the meaning unchanged: Python
    (whitespace is significant, so no normalisation: the parser must give the same AST, and
    every comment must stay as written: `python_comments`), JSON (equal tokens), YAML (line
    ends only: YAML normalises line breaks).
    Shell, Makefiles, Haskell and anything unknown are whitespace-significant: never. The
    bytes must be valid UTF-8 without a NUL byte, with the same BOM, shebang line and
    encoding declaration on both sides, and no declaration of another encoding. `modes`
    (old, new): an executable side without a `#!` line is shell whatever its extension
    (`content.runs_as_shell`), so never formatting-only.
    """
    if old is None or new is None or old == new:
        return None
    if any(content.runs_as_shell(m, d) for m, d in zip(modes, (old, new), strict=True)):
        return None
    if content.is_binary(old) or content.is_binary(new):
        return None
    if not (content.is_utf8(old) and content.is_utf8(new)):
        return None
    if _header(old) != _header(new) or content.declares_other_encoding(new):
        return None
    old_lang, new_lang = content.language(path, old), content.language(path, new)
    if old_lang != new_lang:
        return None
    if new_lang == "python":
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
        if not python_ast_equal(old_text, new_text, parses):
            return None
        old_comments = python_comments(old_text)
        if old_comments is None or old_comments != python_comments(new_text):
            return None  # comments tools read: PEP 723 dependencies, directives
        return "formatting-only change (equal Python AST)"
    if new_lang == "json":
        if json_equal(old.decode("utf-8"), new.decode("utf-8")):
            return "formatting-only change (equal JSON tokens)"
        return None
    if new_lang == "yaml" and old.replace(b"\r\n", b"\n") == new.replace(b"\r\n", b"\n"):
        return "formatting-only change (line endings only, YAML)"
    return None
