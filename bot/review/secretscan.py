"""Secret scanning of every changed byte: added lines of text files, whole blobs of binary and
oversize files, file names — skipped or not (docs/security.md, "Secrets in the diff").

detect-secrets' plugins decide what a secret is; this module decides where to look and makes
looking cheap enough to look everywhere:

- one prefilter finds the lines where any detector could fire, and only those are handed to
  the plugins. The prefilter is the plugins' own patterns joined into one RE2 program (linear
  time, ~0.5 GB/s here, against ~2 MB/s for the same patterns in Python's `re`). RE2 lacks
  look-arounds and Python's Unicode classes, so each pattern is rewritten into a pattern that
  matches at least wherever the original does (look-arounds and word boundaries dropped, `\\w`
  `\\d` `\\s` spelled as the Unicode sets Python gives them); a pattern RE2 still refuses is
  searched with Python's `re`;
- a line longer than MAX_LINE is scanned in overlapping windows instead of being left out;
- a blob (binary content, or a text file over review.max_file_bytes that has no diff) is read
  window by window: text as UTF-8 lines, binary content as its printable runs (ASCII and
  UTF-16LE, like `strings`); a secret whose value was already in the old blob is not new.

Nothing here copies a secret's value into a message; `Hit.identity` is a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

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
# Lines are scanned in windows of this many characters, overlapping by _OVERLAP (longer than
# any secret a detector matches), so a minified file's one line is scanned whole.
MAX_LINE = 4000
_OVERLAP = 512
# Blobs are scanned this many bytes at a time (plus the overlap).
WINDOW_BYTES = 1 << 20
# A printable run this long in binary content is scanned as a line (`strings` uses 4; secrets
# are longer than 8).
_MIN_RUN = 8
_ASCII_RUN = re.compile(rb"[\t\x20-\x7e]{%d,}" % _MIN_RUN)
_UTF16_RUN = re.compile(rb"(?:[\t\x20-\x7e]\x00){%d,}" % _MIN_RUN)
# Letters Python's `re` matches case-insensitively where RE2 does not (sre_compile's fixes and
# the Turkic i), plus their partners: the only places the two engines can disagree.
_FOLDED = re.compile(
    "[\u0130\u0131\u017f\u212a\u00b5\u1e9b\u1e61\ufb05\ufb06\u0345\u1fbe\u0390\u1fd3"
    "\u03b0\u1fe3\u03d0\u03f5\u03d1\u03f0\u03d6\u03f1\u03c2\u03d5\u03bc\u03b9\u03b2"
    "\u03b5\u03b8\u03ba\u03c0\u03c1\u03c3\u03c6]"
)


@dataclass(frozen=True)
class Hit:
    """A possible secret. `line` is a 1-based line of the new file (None in binary content,
    where `offset` is the byte offset); `kinds` are the detectors that fired."""

    line: int | None
    offset: int | None
    kinds: tuple[str, ...]
    identity: str

    @property
    def strong(self) -> bool:
        return any(k not in WEAK_DETECTORS for k in self.kinds)


@cache
def _plugins() -> tuple[BasePlugin, ...]:
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
    for index, plugin in enumerate(_plugins()):
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


# --- the detectors ---------------------------------------------------------------------------


def _windows(text: str) -> Iterator[str]:
    if len(text) <= MAX_LINE:
        yield text
        return
    step = MAX_LINE - _OVERLAP
    for start in range(0, len(text) - _OVERLAP, step):
        yield text[start : start + MAX_LINE]


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:32]


class Budget:
    """How many candidate lines one file may send to the detectors. Past it the scan stops
    and says so (`exhausted`): a file made of lines that all look like secrets cannot make
    the gate run for hours."""

    def __init__(self, lines: int = 20_000) -> None:
        self.limit = lines
        self.left = lines
        self.exhausted = False

    def take(self) -> bool:
        if self.left <= 0:
            self.exhausted = True
            return False
        self.left -= 1
        return True


def scan_line(
    path: str,
    text: str,
    line: int | None,
    offset: int | None = None,
    plugins: Iterable[int] = ALL,
) -> list[Hit]:
    """Run the detectors (those in `plugins`, by index; ALL: every one) on one line, in
    windows when it is long."""
    wanted = set(plugins)
    every = _plugins()
    chosen = every if wanted & ALL else tuple(every[i] for i in sorted(wanted) if i >= 0)
    found: dict[str, set[str]] = {}  # identity -> kinds
    for window in _windows(text):
        m = PEM_PRIVATE_KEY.search(window)
        if m:
            # The key's first bytes tell one key from another (the header is the same for all).
            ident = _digest(PRIVATE_KEY, window[m.start() : m.start() + 160])
            found.setdefault(ident, set()).add(PRIVATE_KEY)
            continue
        for plugin in chosen:
            for secret in plugin.analyze_line(filename=path, line=window, line_number=line or 0):
                value = secret.secret_value or secret.secret_hash or ""
                found.setdefault(_digest(str(secret.type), value), set()).add(str(secret.type))
    return [Hit(line, offset, tuple(sorted(kinds)), ident) for ident, kinds in found.items()]


Item = tuple[int | None, int | None, str]  # (line, byte offset, text)


def scan_items(path: str, items: list[Item], budget: Budget) -> list[Hit]:
    """Hits in the given lines, prefiltered as one block."""
    if not items:
        return []
    block = "\n".join(text.replace("\n", " ") for _, _, text in items)
    out: list[Hit] = []
    for index, plugins in sorted(candidate_lines(block).items()):
        if not budget.take():
            break
        line, offset, text = items[index]
        out += scan_line(path, text, line, offset, plugins)
    return out


def scan_text(path: str, text: str, first_line: int, budget: Budget) -> list[Hit]:
    """Hits in a text of many lines (the first numbered `first_line`): one prefilter pass over
    the text; only the flagged lines are split out for the detectors."""
    candidates = candidate_lines(text)
    if not candidates:
        return []
    lines = text.split("\n")
    out: list[Hit] = []
    for index, plugins in sorted(candidates.items()):
        if not budget.take():
            break
        out += scan_line(path, lines[index], first_line + index, None, plugins)
    return out


def scan_path(path: str, budget: Budget) -> list[Hit]:
    """A secret in the file's name (a path is changed content too)."""
    return scan_items(path, [(None, None, path)], budget)


@dataclass(frozen=True)
class _Window:
    data: bytes
    line: int  # 1-based line number of its first byte
    offset: int  # byte offset of its first byte


def windows(chunks: Iterable[bytes]) -> Iterator[_Window]:
    """Successive windows of about WINDOW_BYTES over a stream of chunks, cut after a line end
    where there is one; a line longer than a window is cut anywhere, and the next window then
    starts _OVERLAP bytes back, so a secret across the cut is whole in one of them. Memory: one
    window and one chunk."""
    buf = bytearray()
    line, offset = 1, 0
    source = iter(chunks)
    done = False
    while not done or buf:
        while not done and len(buf) < WINDOW_BYTES:
            chunk = next(source, None)
            if chunk is None:
                done = True
            else:
                buf += chunk
        if not buf:
            break
        end = min(len(buf), WINDOW_BYTES)
        if end < len(buf) or not done:
            cut = buf.rfind(b"\n", 0, end)
            end = cut + 1 if cut > 0 else end
        window = bytes(buf[:end])
        yield _Window(window, line, offset)
        whole_lines = window.endswith(b"\n") or (done and end == len(buf))
        keep = end if whole_lines else max(end - _OVERLAP, 1)
        line += window.count(b"\n", 0, keep)
        offset += keep
        del buf[:keep]


def _binary_runs(window: _Window) -> Iterator[Item]:
    """Every printable ASCII or UTF-16LE run in binary content, with its byte offset."""
    for m in _ASCII_RUN.finditer(window.data):
        yield None, window.offset + m.start(), m.group().decode("ascii")
    for m in _UTF16_RUN.finditer(window.data):
        yield None, window.offset + m.start(), m.group().decode("utf-16-le")


def scan_stream(path: str, chunks: Iterable[bytes], budget: Budget) -> list[Hit]:
    """Hits anywhere in a blob, window by window: a window holding a NUL byte is scanned as
    binary content (its printable runs), any other as UTF-8 text lines."""
    seen: set[tuple[str, int | None]] = set()
    out: list[Hit] = []
    for window in windows(chunks):
        if b"\0" in window.data:
            hits = scan_items(path, list(_binary_runs(window)), budget)
        else:
            hits = scan_text(path, window.data.decode("utf-8", "replace"), window.line, budget)
        for hit in hits:
            if (hit.identity, hit.line) not in seen:
                seen.add((hit.identity, hit.line))
                out.append(hit)
        if budget.exhausted:
            break
    return out


def chunked(data: bytes, size: int = WINDOW_BYTES) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def new_in_stream(
    path: str,
    new: Iterable[bytes],
    old: Iterable[bytes] | None,
    budget: Budget,
) -> list[Hit]:
    """Hits in the new blob whose secret value was not already in the old one (the changed
    bytes of a blob that has no diff). The old side is scanned only when the new one has hits."""
    hits = scan_stream(path, new, budget)
    if not hits or old is None:
        return hits
    known = {h.identity for h in scan_stream(path, old, Budget(budget.limit))}
    return [h for h in hits if h.identity not in known]
