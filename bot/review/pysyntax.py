"""Parsing Python source at most once per review.

Parsing is the most expensive thing the free stages do. Triage parses both sides of a
possible formatting-only change, the local reviewer needs to know whether the new side parses:
`Parses` remembers each text's outcome so the same text is never parsed twice. Only the
outcome is kept, not the tree (an AST is many times the size of its source).
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise

from bot.review.types import FileChange


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""  # why it does not parse
    lineno: int | None = None  # where, when the parser says so
    syntax_error: bool = False  # a SyntaxError (vs. too deep / too large to parse)


OK = Outcome(True)


def _parse(text: str, filename: str) -> tuple[ast.Module | None, Outcome]:
    try:
        return ast.parse(text, filename=filename), OK
    except SyntaxError as exc:
        line = exc.lineno if exc.lineno and exc.lineno >= 1 else None
        return None, Outcome(False, exc.msg, line, syntax_error=True)
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, nesting, size
        return None, Outcome(False, str(exc) or type(exc).__name__)


class Parses:
    """A per-review memo of parse outcomes, keyed by the text itself."""

    def __init__(self) -> None:
        self._outcomes: dict[str, Outcome] = {}
        self.parsed = 0  # whole texts parsed (for tests and profiling)
        self.split = 0  # texts checked statement by statement

    def tree(self, text: str, filename: str = "<unknown>") -> ast.Module | None:
        """The AST of `text` (None when it does not parse); the outcome is remembered."""
        known = self._outcomes.get(text)
        if known is not None and not known.ok:
            return None
        self.parsed += 1
        tree, outcome = _parse(text, filename)
        self._outcomes[text] = outcome
        return tree

    def outcome_of_change(
        self, old: str | None, new: str, change: FileChange, filename: str = "<unknown>"
    ) -> Outcome:
        """Whether `new` parses as far as the change from `old` can tell: only the top-level
        statements the change touches are parsed, unless the file is small, new, already
        parsed, or one of them fails (then the whole file is, for Python's own message)."""
        known = self._outcomes.get(new)
        if known is not None:
            return known
        if old is not None and len(new) >= _MIN_SPLIT_CHARS:
            self.split += 1
            if _touched_parse(old, new, change):
                return OK
        return self.outcome(new, filename)

    def outcome(self, text: str, filename: str = "<unknown>") -> Outcome:
        """Whether `text` parses, parsing only when no earlier call has found out."""
        known = self._outcomes.get(text)
        if known is not None:
            return known
        self.parsed += 1
        outcome = _parse(text, filename)[1]
        self._outcomes[text] = outcome
        return outcome


# -- checking only the statements a change touches ------------------------------------------
#
# A module is a sequence of top-level statements, and it parses exactly when each of them
# does. A statement the change does not touch is the same text, starting from the same
# tokenizer state, as in the base, so its parse result is the base's: an error there was not
# introduced by the change. Parsing only the touched statements finds every error the change
# introduces, at a fraction of the cost of parsing whole files.
#
# The split is done by a scanner that tracks only what makes a line not start a statement:
# strings, comments, open brackets and backslash continuations. Whatever it does not model
# (an unterminated string, a stray backslash, a lone CR, a NUL or BOM) makes it give up, and
# the whole file is parsed. Any touched statement that fails to parse also sends the whole
# file to the parser, so a reported error is always the one Python reports for the file.

# Strings, comments and backslash continuations: what hides brackets or joins lines. The
# lookahead lets the regex engine skip to the next quote, hash or backslash at C speed.
_HIDING = re.compile(
    r"""(?=['"\#\\])(?:
        (?P<str>'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\"
            |'(?:[^\\'\n]|\\.)*'|"(?:[^\\"\n]|\\.)*")
        |(?P<comment>\#[^\n]*)
        |(?P<cont>\\\r?\n)
        |(?P<bad>['"\\])
    )""",
    re.S | re.X,
)
_BRACKETS = str.maketrans("[{]}", "(())")
# The one future import that changes how later lines parse (`<>`); a false alarm only costs
# a whole-file parse.
_FLUFL = re.compile(r"from\s+__future__\s+import\s*\(?[\w\s,]*barry_as_FLUFL")
# A line that can start a top-level statement: no indentation, not blank.
_LINE_START = re.compile(r"^\S", re.M)
_COLUMN_ZERO = re.compile(r"\n(?=\S)")
# Lines at column 0 that continue the statement before them.
_CONTINUES = re.compile(r"(?:else|elif|except|finally)\b")
# Below this size, parsing the whole text is as cheap as splitting it.
_MIN_SPLIT_CHARS = 1024


class _Unmodelled(ValueError):
    pass


def _hide(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "bad":
        raise _Unmodelled(m.group())
    # Same length, so offsets stay those of the text; no newline, so no line starts inside.
    return ("S" if kind == "str" else " ") * (m.end() - m.start())


def statement_starts(text: str) -> list[tuple[int, int]] | None:
    """(offset, line number) of the first line of each top-level statement, line 1 always
    first; None when the text holds something the scanner does not model.

    A split at a line that is not a real statement start leaves a piece that does not parse
    on its own, and then the whole file is parsed: the scanner can cost time, not findings.
    """
    if (
        "\x00" in text
        or text.startswith("\ufeff")
        or text.count("\r") != text.count("\r\n")
        or ("barry_as_FLUFL" in text and _FLUFL.search(text))
    ):
        return None
    try:
        code = _HIDING.sub(_hide, text).translate(_BRACKETS)
    except _Unmodelled:
        return None
    starts = [(0, 1)]
    line, pos, depth = 1, 0, 0
    decorated = False
    for m in _LINE_START.finditer(code):
        off = m.start()
        depth += code.count("(", pos, off) - code.count(")", pos, off)
        line += text.count("\n", pos, off)
        pos = off
        if depth != 0:
            continue  # inside brackets (strings and continuations hide their line starts)
        if decorated or _CONTINUES.match(code, off):
            decorated = decorated and code[off] == "@"
            continue
        decorated = code[off] == "@"
        if off:
            starts.append((off, line))
    if depth + code.count("(", pos) - code.count(")", pos) != 0:
        return None
    return starts


def touched_lines(change: FileChange) -> set[int]:
    """New-side lines that a change added, and the lines next to every added or removed run
    (a removal can break the statement around it; an addition can end the one before it)."""
    out: set[int] = set()
    for hunk in change.hunks:
        last_new = hunk.new_start - 1  # the new line before the current position
        for ln in hunk.lines:
            if ln.origin == "+" and ln.new_lineno is not None:
                out.update((ln.new_lineno - 1, ln.new_lineno, ln.new_lineno + 1))
                last_new = ln.new_lineno
            elif ln.origin == "-":
                out.update((last_new, last_new + 1))
            elif ln.new_lineno is not None:
                last_new = ln.new_lineno
    return out


def _touched_parse(old: str, new: str, change: FileChange) -> bool | None:
    """True when every statement of `new` that may differ from `old` parses; False when one
    does not; None when the split does not apply (then the whole file is parsed).

    An untouched statement needs no parse when it starts where a statement of the base
    starts, with the tokenizer in the same state. Up to the first change that is given; after
    a change, the base is scanned from the last such point up to the statement's first line
    to see whether the two are in step again (usually right after the changed statement).
    Once in step after the last change, the rest of the file is the base's: not even scanned.
    """
    touched = sorted(touched_lines(change))
    if not touched:
        return None
    head = _head_starts(new, touched[-1])
    plan = _Plan(_Shifts(change), budget=4 * (len(old) + len(new)) + 4096)
    try:
        todo = _to_parse(old, new, plan, touched, head) if head is not None else None
        if todo is None:
            starts = statement_starts(new)
            if starts is None:
                return None
            todo = _to_parse(old, new, plan, touched, (starts, len(new)))
            assert todo is not None  # a whole-text plan always ends
    except _OverBudget:
        return None
    if sum(map(len, todo)) * 2 > len(new):
        return None  # most of the file: one parse of the whole is simpler
    for chunk in todo:
        try:
            ast.parse(chunk)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def _head_starts(text: str, through_line: int) -> tuple[list[tuple[int, int]], int] | None:
    """Statement starts of the text up to the first line that may start a statement after
    `through_line` (that line's first character included, so it is found if it starts one),
    and where that line begins; None when that is (nearly) the whole text."""
    lines = text.count("\n") + 1
    if through_line + 2 >= lines:
        return None
    pos = len(text) * through_line // lines
    while True:
        m = _COLUMN_ZERO.search(text, pos)
        if m is None:
            return None
        cut = m.end()
        if text.count("\n", 0, cut) + 1 > through_line:
            break
        pos = cut
    if cut * 4 > len(text) * 3:
        return None
    starts = statement_starts(text[: cut + 1])
    return (starts, cut) if starts is not None else None


class _OverBudget(Exception):
    """The in-step scan read more than the budget: parsing the whole file is cheaper."""


@dataclass
class _Plan:
    shifts: _Shifts
    budget: int  # characters of `old` the in-step scans may read in total
    scanned: int = 0


def _to_parse(
    old: str,
    new: str,
    plan: _Plan,
    touched: list[int],
    head: tuple[list[tuple[int, int]], int],
) -> list[str] | None:
    """The statements of `new` to parse, given the statement starts of `new[:end]`; None when
    `end` came before the statements after the last change are back in step with the base."""
    starts, end = head
    whole = end == len(new)
    bounds = [*starts, (len(new), -1)] if whole else starts
    sync = (0, 1)  # (offset, line) where both sides start a statement in the same state
    in_step = True
    todo: list[str] = []
    for (off, line), (stop, next_line) in pairwise(bounds):
        last = next_line - 1 if next_line > 0 else line + new.count("\n", off, stop)
        i = bisect_left(touched, line)
        if i < len(touched) and touched[i] <= last:
            in_step = False
        elif not in_step:
            in_step = _starts_in_step(old, new, plan, sync, (off, line))
        if in_step:
            if line > touched[-1]:
                return todo  # the rest is the base's, statement for statement
            sync = (off, line)
        else:
            todo.append(new[off:stop])
    if whole:
        return todo
    # The last start found: in step after the last change, the rest is the base's.
    off, line = bounds[-1]
    if line > touched[-1] and (in_step or _starts_in_step(old, new, plan, sync, (off, line))):
        return todo
    return None


class _Shifts:
    """How far each unchanged new-side line has moved from its place in `old`: the lengths of
    the lines the hunks add and remove before it, as prefix sums built once per change.

    A line of a hunk counts for new-side line q when it comes before q in the hunk walk: an
    added or context line numbered n when n < q; a removed line when q is past the last new
    line before it in its hunk (past the hunk's start when none is). Sorted by that threshold,
    the shift for q is one binary search instead of a walk over every hunk (which made the
    syntax check quadratic in the number of hunks)."""

    def __init__(self, change: FileChange) -> None:
        events: list[tuple[int, int]] = []
        for hunk in change.hunks:
            last = hunk.new_start - 1 if hunk.new_lines else hunk.new_start
            for ln in hunk.lines:
                if ln.new_lineno is not None:
                    if ln.origin == "+":
                        events.append((ln.new_lineno, -len(ln.content)))
                    last = ln.new_lineno
                elif ln.origin == "-":
                    events.append((last, len(ln.content)))
        events.sort(key=lambda e: e[0])
        self._keys = [k for k, _ in events]
        self._sums = [0]
        for _, delta in events:
            self._sums.append(self._sums[-1] + delta)

    def shift(self, new_line: int) -> int:
        return self._sums[bisect_left(self._keys, new_line)]


def _old_offset(old: str, new: str, shifts: _Shifts, at: tuple[int, int]) -> int | None:
    """Where the unchanged new-side line at (offset, line) is in `old`; None when the texts
    disagree."""
    new_off, new_line = at
    if new_line == 1:
        return 0
    old_off = new_off + shifts.shift(new_line)
    eol = new.find("\n", new_off)
    text = new[new_off : eol + 1 if eol != -1 else len(new)]
    return old_off if old.startswith(text, old_off) else None


def _starts_in_step(
    old: str, new: str, plan: _Plan, sync: tuple[int, int], at: tuple[int, int]
) -> bool:
    """Does the base start a statement at the (unchanged) new-side line `at`, scanning from
    `sync`, where both sides are known to start one in the same state?"""
    begin = _old_offset(old, new, plan.shifts, sync)
    target = _old_offset(old, new, plan.shifts, at)
    if begin is None or target is None or target < begin:
        return False
    # Scanning from the same sync point for statement after statement is quadratic when the
    # two sides never fall back in step: past a budget, the caller parses the whole file.
    plan.scanned += target + 1 - begin
    if plan.scanned > plan.budget:
        raise _OverBudget
    # One character of the target line is enough: whether it starts a statement depends on
    # the state before it and on its first character only.
    starts = statement_starts(old[begin : target + 1])
    return starts is not None and starts[-1][0] == target - begin
