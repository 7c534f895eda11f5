"""Secret scanning of every changed byte: added lines of text files, whole blobs of binary and
oversize files, file names — skipped or not (docs/security.md, "Secrets in the diff").

detect-secrets' plugins decide what a secret is; this module decides where to look and makes
looking cheap enough to look everywhere:

- a prefilter (bot/review/secretfilter.py: the plugins' own patterns as one RE2 program) finds
  the lines where any detector could fire, and which; only those detectors see only those lines;
- a line longer than MAX_LINE is scanned in overlapping windows instead of being left out;
- a blob (binary content, or a text file over review.max_file_bytes that has no diff) is read
  window by window: text as UTF-8 lines, binary content as its printable runs (ASCII, UTF-16
  and UTF-32 in either byte order, like `strings -e`); a secret whose value was already in the
  old blob is not new.

Nothing here copies a secret's value into a message; `Hit.identity` is a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.review import secretfilter
from bot.review.secretfilter import (
    ALL,
    PEM_PRIVATE_KEY,
    PRIVATE_KEY,
    WEAK_DETECTORS,
    candidate_lines,
)

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
# Wide runs: printable ASCII in UTF-16 and UTF-32. One pattern per width serves both byte
# orders: a big-endian run is the little-endian one read from its next byte, except that its
# last character has no NUL after it, so that NUL is optional.
_UTF16_RUN = re.compile(rb"(?:[\t\x20-\x7e]\x00){%d,}[\t\x20-\x7e](?:\x00)?" % (_MIN_RUN - 1))
_UTF32_RUN = re.compile(
    rb"(?:[\t\x20-\x7e]\x00\x00\x00){%d,}[\t\x20-\x7e](?:\x00\x00\x00)?" % (_MIN_RUN - 1)
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
    every = secretfilter.plugins()
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
    """Every printable run in binary content — ASCII, UTF-16 or UTF-32 of either byte order
    (a BOM or none) — with its byte offset."""
    for m in _ASCII_RUN.finditer(window.data):
        yield None, window.offset + m.start(), m.group().decode("ascii")
    for m in _UTF16_RUN.finditer(window.data):
        yield None, window.offset + m.start(), m.group()[::2].decode("ascii")
    if b"\x00\x00\x00" in window.data:  # no UTF-32 without it: most windows skip the pass
        for m in _UTF32_RUN.finditer(window.data):
            yield None, window.offset + m.start(), m.group()[::4].decode("ascii")


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
