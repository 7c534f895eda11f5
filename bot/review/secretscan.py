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
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


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
    "Z": r"\z",
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
    fast: Any  # one RE2 program; group `p<i>` is pattern i of _python_patterns()
    slow: tuple[tuple[re.Pattern[str], int], ...]  # patterns RE2 refused, for Python's re
    plugin_of: tuple[int, ...]  # pattern index -> plugin index (PEM for the key pattern)
    everything: bool  # no prefilter possible: every line, every plugin


@cache
def _prefilter() -> _Prefilter:
    import re2

    patterns = _python_patterns()
    if patterns is None:
        return _Prefilter(None, (), (), everything=True)
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    parts: list[str] = []
    slow: list[tuple[re.Pattern[str], int]] = []
    for n, (p, plugin) in enumerate(patterns):
        flags = (
            "m" + ("i" if p.flags & re.IGNORECASE else "") + ("s" if p.flags & re.DOTALL else "")
        )
        try:
            part = f"(?P<p{n}>(?{flags}:{for_re2(p.pattern)}))"
            re2.compile(part, options)
        except (ValueError, re2.error):
            slow.append((p, plugin))
            continue
        parts.append(part)
    fast = re2.compile("|".join(parts), options) if parts else None
    return _Prefilter(fast, tuple(slow), tuple(pl for _, pl in patterns), everything=False)


ALL = frozenset({-2})  # "every plugin" (no prefilter, or a match no pattern claims)


def candidate_lines(block: str) -> dict[int, set[int]]:
    """0-based index of each line of `block` where some detector could fire -> the plugins
    that could (PEM for the private-key check; ALL: every plugin)."""
    pre = _prefilter()
    starts = [0, *(m.end() for m in re.finditer("\n", block))]
    if pre.everything:
        return {i: set(ALL) for i in range(len(starts))}
    hits: dict[int, set[int]] = {}

    def mark(start: int, end: int, plugin: int) -> None:
        first = bisect_right(starts, start) - 1
        last = bisect_right(starts, max(start, end - 1)) - 1
        for line in range(first, last + 1):
            hits.setdefault(line, set()).add(plugin)

    if pre.fast is not None:
        for m in pre.fast.finditer(block):
            name = m.lastgroup
            mark(m.start(), m.end(), pre.plugin_of[int(name[1:])] if name else -2)
    for p, plugin in pre.slow:
        for m in p.finditer(block):
            mark(m.start(), m.end(), plugin)
    if not block.isascii():
        # RE2's case folding is Unicode's simple folding; Python's differs on a few letters.
        # Lines outside ASCII are rare in code: check them with Python's own patterns too.
        lines = sorted({bisect_right(starts, m.start()) - 1 for m in _NOT_ASCII.finditer(block)})
        for line in lines:
            end = starts[line + 1] - 1 if line + 1 < len(starts) else len(block)
            text = block[starts[line] : end]
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


def scan_path(path: str, budget: Budget) -> list[Hit]:
    """A secret in the file's name (a path is changed content too)."""
    return scan_items(path, [(None, None, path)], budget)


def _text_windows(data: bytes) -> Iterator[tuple[int, str]]:
    """(first line number, text) of successive windows of a text blob, cut at line ends; a
    line longer than a window is cut anywhere, and the windows then overlap."""
    line, start = 1, 0
    while start < len(data):
        end = min(len(data), start + WINDOW_BYTES)
        cut = data.rfind(b"\n", start, end) if end < len(data) else -1
        if cut > start:
            end = cut + 1
        chunk = data[start:end]
        yield line, chunk.decode("utf-8", "replace")
        line += chunk.count(b"\n")
        whole_lines = end == len(data) or data[end - 1] == 0x0A
        start = end if whole_lines else end - _OVERLAP


def _binary_runs(data: bytes) -> Iterator[Item]:
    """Every printable ASCII or UTF-16LE run in binary content, with its byte offset."""
    for start in range(0, len(data), WINDOW_BYTES):
        chunk = data[start : start + WINDOW_BYTES + _OVERLAP]
        last = start + WINDOW_BYTES >= len(data)
        for m in _ASCII_RUN.finditer(chunk):
            if m.start() < WINDOW_BYTES or last:
                yield None, start + m.start(), m.group().decode("ascii")
        for m in _UTF16_RUN.finditer(chunk):
            if m.start() < WINDOW_BYTES or last:
                yield None, start + m.start(), m.group().decode("utf-16-le")


def scan_blob(path: str, data: bytes, binary: bool, budget: Budget) -> list[Hit]:
    """Hits anywhere in a blob: text by lines, binary content by printable runs."""
    out: list[Hit] = []
    if binary:
        batch: list[Item] = []
        for item in _binary_runs(data):
            batch.append(item)
            if len(batch) >= 4096:
                out += scan_items(path, batch, budget)
                batch = []
        out += scan_items(path, batch, budget)
    else:
        for first, text in _text_windows(data):
            lines = text.split("\n")
            out += scan_items(path, [(first + i, None, t) for i, t in enumerate(lines)], budget)
    seen: set[tuple[str, int | None]] = set()
    unique: list[Hit] = []
    for hit in out:
        if (hit.identity, hit.line) not in seen:
            seen.add((hit.identity, hit.line))
            unique.append(hit)
    return unique


def new_in_blob(
    path: str, new: bytes, old: bytes | None, binary: bool, budget: Budget
) -> list[Hit]:
    """Hits in `new` whose secret value was not already in `old` (the changed bytes of a blob
    that has no diff)."""
    hits = scan_blob(path, new, binary, budget)
    if not hits or old is None:
        return hits
    known = {h.identity for h in scan_blob(path, old, binary or b"\0" in old, Budget())}
    return [h for h in hits if h.identity not in known]
