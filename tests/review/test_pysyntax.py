"""The syntax check parses only the statements a change touches: it must find exactly what a
whole-file parse finds whenever the base parsed, on real code and on random edits."""

from __future__ import annotations

import ast
import random
from itertools import pairwise
from pathlib import Path

import pytest

from bot.git.diff import hunks_between
from bot.review import local
from bot.review.pysyntax import Parses, statement_starts
from bot.review.types import FileChange

ROOT = Path(__file__).resolve().parents[2]


def _change(old: str | None, new: str, path: str = "m.py") -> FileChange:
    hunks = hunks_between(old.encode() if old is not None else None, new.encode())
    return FileChange(
        path=path,
        old_path=None,
        change="modified" if old is not None else "added",
        old_oid="1" * 40 if old is not None else None,
        new_oid="2" * 40,
        old_mode=0o100644,
        new_mode=0o100644,
        binary=False,
        old_size=len(old or ""),
        new_size=len(new),
        hunks=hunks,
    )


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _check(old: str | None, new: str) -> tuple[list, Parses]:
    parses = Parses()
    return local.check_python_syntax(_change(old, new), new, parses, old), parses


def test_every_piece_of_our_own_code_parses_alone() -> None:
    # Scanner fidelity on real, valid code: each split point is a real statement start.
    sources = sorted((ROOT / "bot").rglob("*.py"))
    assert len(sources) > 30
    split = 0
    for path in sources:
        text = path.read_text("utf-8")
        starts = statement_starts(text)
        assert starts is not None, path
        bounds = [off for off, _ in starts] + [len(text)]
        for a, b in pairwise(bounds):
            assert _parses(text[a:b]), (path, text[a:b][:200])
        split += len(starts) > 3
    assert split > 20


def test_scanner_knows_strings_brackets_continuations_and_clauses() -> None:
    text = (
        "import os\n"  # 1
        '"""doc\n'  # 2
        "not code(\n"  # 3: inside the string
        '"""\n'  # 4
        "x = foo(\n"  # 5
        "1,\n"  # 6: inside brackets
        ")\n"  # 7
        "y = 1 + \\\n"  # 8
        "2\n"  # 9: continued
        "# a comment\n"  # 10
        "@dec\n"  # 11
        "def f():\n"  # 12: decorated
        "    pass\n"  # 13
        "try:\n"  # 14
        "    pass\n"  # 15
        "except E:\n"  # 16: continues the try
        "    pass\n"  # 17
        "s = '(' + \"[\"  # ((\n"  # 18: brackets in strings and comments
        "z = 3\n"  # 19
    )
    assert [line for _, line in statement_starts(text) or []] == [1, 2, 5, 8, 11, 14, 18, 19]
    for bad in ("x = 'open\n", "x = 1\x00\n", "a = 1\rb = 2\n", "x = 1 \\ y\n", "f(\n"):
        assert statement_starts(bad) is None, bad


def _module(n: int) -> list[str]:
    lines = ['"""A module."""', "", "import os", ""]
    for i in range(n):
        lines += [
            "",
            f"def step_{i}(values, factor={i}):",
            f'    """Step {i}: scale (and sum) the values."""',
            "    total = 0",
            "    for v in values:",
            "        total += v * factor",
            "    return total",
        ]
    return lines


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def test_a_valid_edit_is_checked_without_parsing_the_whole_file() -> None:
    old = _module(12)
    new = list(old)
    new[20] = "    total = 1"
    findings, parses = _check(_text(old), _text(new))
    assert findings == []
    assert (parses.split, parses.parsed) == (1, 0)


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        # an error inside the changed function
        (lambda ls: ls.__setitem__(20, "    total = = 1"), 21),
        # a string opened by the change swallows the code after it
        (lambda ls: ls.insert(21, '    s = """'), None),
        # a dedented line in the middle of a body
        (lambda ls: ls.insert(22, "x = 1"), None),
    ],
)
def test_errors_the_change_introduces_are_found(edit, line: int | None) -> None:
    old = _module(12)
    new = list(old)
    edit(new)
    assert not _parses(_text(new))
    findings, _ = _check(_text(old), _text(new))
    assert [f.category for f in findings] == ["syntax"]
    # The message and line are Python's own for the whole file.
    try:
        ast.parse(_text(new))
    except SyntaxError as exc:
        assert findings[0].line == exc.lineno and exc.msg in findings[0].message
    if line is not None:
        assert findings[0].line == line


def test_untouched_statements_that_a_change_shifts_into_code_are_parsed() -> None:
    # Two new quotes, far apart: each docstring's text between them turns into code. Those
    # lines are not touched, but they did not start a statement in the base: they are parsed.
    pad = _module(6)
    old = [*pad, 'a = """', "free text", '"""', "b = 2", 'c = """', "more", '"""', *pad]
    new = list(old)
    new.insert(len(pad) + 7, 's2 = """')
    new.insert(len(pad), 's1 = """')
    old_text, new_text = _text(old), _text(new)
    assert _parses(old_text) and not _parses(new_text)
    assert statement_starts(new_text) is not None  # the split applies
    findings, parses = _check(old_text, new_text)
    assert [f.category for f in findings] == ["syntax"] and parses.split == 1


def test_remove_a_handler_from_a_try_is_found() -> None:
    old = _module(12)
    old[18:18] = ["try:", "    x = 1", "except E:", "    pass"]
    new = list(old)
    del new[20:22]
    assert _parses(_text(old)) and not _parses(_text(new))
    assert [f.category for f in _check(_text(old), _text(new))[0]] == ["syntax"]


def test_an_error_already_in_untouched_code_is_not_blamed_on_the_change() -> None:
    old = _module(12)
    old[40] = "    return = total"  # broken in the base, far from the change
    new = list(old)
    new[20] = "    total = 1"
    assert _check(_text(old), _text(new))[0] == []
    # A new file has no base: all of it is the change's.
    findings, _ = _check(None, _text(new))
    assert findings and findings[0].line == 41


SNIPPETS = [
    "x = 1",
    "    y = 2",
    "        z = 3",
    "def g():",
    "class C:",
    "    def m(self):",
    "@decorator",
    "else:",
    "    else:",
    "try:",
    "except Exception:",
    "finally:",
    "if x:",
    "elif y:",
    "return x",
    '"""',
    '    """docstring',
    "'''",
    "s = 'a' + \"b\"",
    "t = (1,",
    "     2)",
    ")",
    "]",
    "u = [",
    "v = 1 + \\",
    "# comment (",
    "w = '#' # ')'",
    "",
    "    pass",
    "pass",
    "f(a,",
    "  b)",
    "async def h():",
    "    await g()",
    "lambda: (",
]


def test_random_edits_give_the_whole_file_answer_whenever_the_base_parses() -> None:
    rng = random.Random(20261128)
    base = _module(14)
    checked = broken = split = 0
    for _ in range(400):
        old = list(base)
        if rng.random() < 0.5:  # sometimes start from an edited (but valid) base
            i = rng.randrange(5, len(old))
            old.insert(i, " " * (len(old[i]) - len(old[i].lstrip())) + "q = 0")
            if not _parses(_text(old)):
                continue
        new = list(old)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(0, len(new))
            op = rng.random()
            if op < 0.4:
                new.insert(i, rng.choice(SNIPPETS))
            elif op < 0.7:
                del new[i]
            else:
                new[i] = rng.choice(SNIPPETS)
        old_text, new_text = _text(old), _text(new)
        if old_text == new_text:
            continue
        findings, parses = _check(old_text, new_text)
        assert (findings == []) == _parses(new_text), (old_text, new_text)
        checked += 1
        broken += not _parses(new_text)
        split += parses.parsed == 0
    assert checked > 300 and broken > 100 and split > 50


def _walked_shift(change: FileChange, new_line: int) -> int:
    """The shift as the syntax check first computed it: a walk over every hunk line."""
    shift = 0
    for hunk in change.hunks:
        if hunk.new_start > new_line or (hunk.new_lines == 0 and hunk.new_start >= new_line):
            break
        for ln in hunk.lines:
            if ln.new_lineno is not None and ln.new_lineno >= new_line:
                break
            if ln.origin == "+":
                shift -= len(ln.content)
            elif ln.origin == "-":
                shift += len(ln.content)
    return shift


@pytest.mark.parametrize("seed", range(40))
def test_the_shift_table_agrees_with_walking_the_hunks(seed: int) -> None:
    from bot.review.pysyntax import _Shifts

    rng = random.Random(seed)
    old_lines = [f"v{i} = {'x' * rng.randrange(5)}\n" for i in range(rng.randrange(1, 60))]
    new_lines = list(old_lines)
    for _ in range(rng.randrange(1, 12)):
        at = rng.randrange(len(new_lines) + 1)
        what = rng.choice(("add", "drop", "edit"))
        if what == "add":
            new_lines[at:at] = [f"n{rng.randrange(99)}\n"] * rng.randrange(1, 4)
        elif new_lines and at < len(new_lines):
            if what == "drop":
                del new_lines[at : at + rng.randrange(1, 4)]
            else:
                new_lines[at] = f"e{rng.randrange(99)}\n"
    change = _change("".join(old_lines), "".join(new_lines) or "\n")
    shifts = _Shifts(change)
    for q in range(1, len(new_lines) + 3):
        assert shifts.shift(q) == _walked_shift(change, q), (seed, q)


def test_thousands_of_hunks_in_one_file() -> None:
    # 2,000 hunks (the in-step scan once walked every hunk per statement: quadratic; the time
    # is bounded in tests/security/test_bounded_work.py and measured in docs/benchmarks.md).
    old = "".join(f"x{i} = {i}\n" for i in range(16_000))
    new = "".join(f"x{i} = {i}\n" if i % 8 else f"x{i} = {i} + 1\n" for i in range(16_000))
    assert _check(old, new)[0] == []
    broken = new.replace("x8000 = 8000 + 1\n", "x8000 = (8000 + 1\n")
    (finding,), _ = _check(old, broken)
    assert finding.category == "syntax" and finding.line == 8001
