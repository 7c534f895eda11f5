"""Which lines of a text can hold a secret, and which detectors to ask about each: the
prefilter of the secret scan (bot/review/secretscan.py).

detect-secrets' plugins decide what a secret is, line by line; running all ~50 of them on every
line is far too slow to look at every changed byte. Each plugin exposes the patterns a line
must match for it to fire (its deny list). Those patterns, joined into one RE2 program (linear
time, ~0.5 GB/s here, against ~2 MB/s for the same patterns in Python's `re`), find the lines
worth a look; an RE2 set then says which patterns — so which plugins — match each such line.

RE2 lacks look-arounds and Python's Unicode classes, so each pattern is rewritten into one that
matches at least wherever the original does (`for_re2`: look-arounds and word boundaries
dropped, `\\w` `\\d` `\\s` spelled as the Unicode sets Python gives them, repetition bounds
over 1,000 opened). A pattern RE2 still refuses is searched with Python's `re`; lines holding a
letter that Python's case folding treats differently from RE2's are checked with Python's own
patterns too. tests/security/test_secret_scan.py checks the "at least" property.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from bot.inert import unicode_safe

if TYPE_CHECKING:
    from detect_secrets.plugins.base import BasePlugin

# Entropy detectors flag hashes, lock-file integrity strings and test fixtures far too often
# to gate on; a public IP address is not a secret.
_NOISY_DETECTORS = frozenset(
    {"Base64 High Entropy String", "Hex High Entropy String", "Public IP (ipv4)"}
)
# A keyword match (password = "...") is a hint, not proof: reported, not blocking by default.
WEAK_DETECTORS = frozenset({"Secret Keyword"})
PRIVATE_KEY = "Private Key"

PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# Letters Python's `re` matches case-insensitively where RE2 does not (sre_compile's fixes and
# the Turkic i), plus their partners: the only places the two engines can disagree.
_FOLDED = re.compile(
    "[\u0130\u0131\u017f\u212a\u00b5\u1e9b\u1e61\ufb05\ufb06\u0345\u1fbe\u0390\u1fd3"
    "\u03b0\u1fe3\u03d0\u03f5\u03d1\u03f0\u03d6\u03f1\u03c2\u03d5\u03bc\u03b9\u03b2"
    "\u03b5\u03b8\u03ba\u03c0\u03c1\u03c3\u03c6]"
)


@cache
def plugins() -> tuple[BasePlugin, ...]:
    # Imported on first use: detect-secrets (and the requests stack it pulls in) is a tenth of
    # a second that only a review with the secrets check on needs.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    mapping: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    return tuple(cls() for name, cls in sorted(mapping.items()) if name not in _NOISY_DETECTORS)


PEM = -1  # the plugin index of the private-key pattern (checked before any plugin)


@cache
def _python_patterns() -> tuple[tuple[re.Pattern[str], int], ...] | None:
    """(pattern, plugin index) pairs: a detector can only fire on a line its patterns match
    (the plugins' deny lists); None when a plugin does not expose its patterns (then every
    line is scanned by every plugin)."""
    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.keyword import KeywordDetector

    out: list[tuple[re.Pattern[str], int]] = [(PEM_PRIVATE_KEY, PEM)]
    for index, plugin in enumerate(plugins()):
        if isinstance(plugin, KeywordDetector):
            out.append((re.compile(keyword.DENYLIST_REGEX, re.IGNORECASE), index))
            continue
        denylist = getattr(plugin, "denylist", None)
        if not denylist:
            return None
        out += [(re.compile(p.pattern, p.flags | re.MULTILINE), index) for p in denylist]
    return tuple(out)


# --- the RE2 prefilter -----------------------------------------------------------------------

_SPACE = r"\s\v\x1c-\x1f\x{85}\p{Z}"
_OUTSIDE = {
    "w": r"[\p{L}\p{N}_]",
    "d": r"\p{Nd}",
    "s": f"[{_SPACE}]",
    "W": r"[^\p{L}\p{N}_]",
    "D": r"\P{Nd}",
    "S": f"[^{_SPACE}]",
    "b": "",
    "B": "",
    # Lines are matched in a block in multi-line mode: a line's end is its `$` there.
    "Z": "$",
    "A": "^",
}
# Inside a class a negated set cannot be spelled in RE2: any character (a superset) instead.
_INSIDE = {
    "w": r"\p{L}\p{N}_",
    "d": r"\p{Nd}",
    "s": _SPACE,
    "W": r"\x00-\x{10FFFF}",
    "D": r"\x00-\x{10FFFF}",
    "S": r"\x00-\x{10FFFF}",
}
_REPEAT = re.compile(r"\{(\d+),(\d+)\}")


def _skip_group(p: str, i: int) -> int:
    """The index after the group that opens at p[i] (escapes and classes respected)."""
    depth, in_class = 0, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if p[i + 1 : i + 2] == "]" or p[i + 1 : i + 3] == "^]":
                i += 2 if p[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced group")


def _widen(match: re.Match[str]) -> str:
    low, high = int(match[1]), int(match[2])
    return f"{{{min(low, 1000)},}}" if high > 1000 else match[0]


def for_re2(pattern: str) -> str:
    """A pattern RE2 accepts that matches at least everywhere `pattern` (Python) matches."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            e = pattern[i + 1]
            table = _INSIDE if in_class else _OUTSIDE
            out.append(table.get(e, pattern[i : i + 2]))
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            for lead in ("^", "]"):  # "[]...]" and "[^]...]": the first "]" is a literal
                if pattern[i : i + 1] == lead:
                    out.append(lead)
                    i += 1
            continue
        if pattern.startswith("(?P<", i):  # our own group names label the alternatives
            i = pattern.index(">", i) + 1
            out.append("(")
            continue
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = _skip_group(pattern, i)  # an assertion dropped: matches more, never less
            continue
        out.append(c)
        i += 1
    return _REPEAT.sub(_widen, "".join(out))


@dataclass(frozen=True)
class _Prefilter:
    fast: Any  # one RE2 program of every pattern RE2 accepts: finds the candidate lines
    each: Any  # the same patterns as an RE2 set: which of them match one candidate line
    set_index: tuple[int, ...]  # set entry -> pattern index in _python_patterns()
    slow: tuple[tuple[re.Pattern[str], int], ...]  # patterns RE2 refused, for Python's re
    plugin_of: tuple[int, ...]  # pattern index -> plugin index (PEM for the key pattern)
    everything: bool  # no prefilter possible: every line, every plugin


@cache
def _prefilter() -> _Prefilter:
    import re2

    patterns = _python_patterns()
    if patterns is None:
        return _Prefilter(None, None, (), (), (), everything=True)
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    parts: list[str] = []
    indexes: list[int] = []
    slow: list[tuple[re.Pattern[str], int]] = []
    each = re2.Set.SearchSet(options)
    for n, (p, plugin) in enumerate(patterns):
        flags = (
            "m" + ("i" if p.flags & re.IGNORECASE else "") + ("s" if p.flags & re.DOTALL else "")
        )
        try:
            part = f"(?{flags}:{for_re2(p.pattern)})"
            re2.compile(part, options)
            each.Add(part)
        except (ValueError, re2.error):
            slow.append((p, plugin))
            continue
        parts.append(part)
        indexes.append(n)
    if not parts:
        return _Prefilter(None, None, (), tuple(slow), (), everything=False)
    each.Compile()
    plugin_of = tuple(pl for _, pl in patterns)
    fast = re2.compile("|".join(parts), options)
    return _Prefilter(fast, each, tuple(indexes), tuple(slow), plugin_of, everything=False)


ALL = frozenset({-2})  # "every plugin" (no prefilter possible)


def candidate_lines(block: str) -> dict[int, set[int]]:
    """0-based index of each line of `block` where some detector could fire -> the plugins
    that could (PEM for the private-key check; ALL: every plugin).

    One pass of the combined program finds the lines (its matches do not overlap, but every
    place where any pattern matches lies inside one of them); then the set says which
    patterns match each of those lines on its own, as the detectors see it."""
    # RE2 takes UTF-8 only: a lone surrogate (a file name that is not UTF-8, read with
    # surrogateescape) is spelled out; no line break is added, so every line keeps its index.
    block = unicode_safe(block)
    pre = _prefilter()
    found = [] if pre.fast is None else [(m.start(), m.end()) for m in pre.fast.finditer(block)]
    if not found and not pre.slow and not pre.everything and block.isascii():
        return {}  # the usual case, decided by one RE2 pass
    starts = [0, *(m.end() for m in re.finditer("\n", block))]
    if pre.everything:
        return {i: set(ALL) for i in range(len(starts))}

    def line_text(index: int) -> str:
        end = starts[index + 1] - 1 if index + 1 < len(starts) else len(block)
        return block[starts[index] : end]

    lines: set[int] = set()
    for start, end in found:
        first = bisect_right(starts, start) - 1
        last = bisect_right(starts, max(start, end - 1)) - 1
        lines.update(range(first, last + 1))
    hits: dict[int, set[int]] = {}
    for index in lines:
        matched = pre.each.Match(line_text(index))
        if matched:
            hits[index] = {pre.plugin_of[pre.set_index[i]] for i in matched}
    for p, plugin in pre.slow:
        for m in p.finditer(block):
            hits.setdefault(bisect_right(starts, m.start()) - 1, set()).add(plugin)
    if not block.isascii():
        # RE2 folds case by Unicode's simple case folding; Python's `re` also folds the letters
        # of _FOLDED (dotless i, and its own extra pairs). A line holding one is checked with
        # Python's own patterns too.
        foreign = sorted({bisect_right(starts, m.start()) - 1 for m in _FOLDED.finditer(block)})
        for line in foreign:
            text = line_text(line)
            for p, plugin in _python_patterns() or ():
                if plugin not in hits.get(line, ()) and p.search(text):
                    hits.setdefault(line, set()).add(plugin)
    return hits
