"""The local reviewer: deterministic checks that run on every review, with or without a model.

Its findings are always part of the verdict; a model can add findings, never remove these.
Line-based checks look only at added lines, so a PR is not blamed for what it did not touch.
Secret values are never copied into a finding's message.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from bot.config.review import LocalChecksConfig, ReviewConfig, Severity
from bot.review import content, secretscan
from bot.review.models import Finding
from bot.review.pysyntax import Parses
from bot.review.types import FileChange

_CONFLICT_START = re.compile(r"^<{7}(?: |$)")
_CONFLICT_END = re.compile(r"^>{7}(?: |$)")
_CONFLICT_MID = re.compile(r"^={7}$")
_DEBUG_CALL = re.compile(
    r"(?<![\w.])(?:breakpoint\s*\(\s*\)|i?pdb\.set_trace\s*\(|pudb\.set_trace\s*\()"
)
_DEBUG_IMPORT = re.compile(r"^\s*(?:import\s+i?pdb\b|from\s+i?pdb\s+import\b)")
PYTHON_SUFFIXES = (".py", ".pyi")
# Secret-like candidate lines one file may send to the detectors (secretscan.Budget).
SECRET_SCAN_LINES = 20_000


def _finding(
    change: FileChange,
    line: int | None,
    severity: Severity,
    category: str,
    message: str,
    *,
    in_diff: bool = True,
) -> Finding:
    return Finding(
        path=change.path,
        line=line,
        end_line=line,
        severity=severity,
        category=category,
        message=message,
        source="local",
        in_diff=in_diff and line is not None,
    )


def added_lines(change: FileChange) -> Iterator[tuple[int, str]]:
    for hunk in change.hunks:
        for ln in hunk.lines:
            if ln.origin == "+" and ln.new_lineno is not None:
                yield ln.new_lineno, ln.content.rstrip("\r\n")


def _secret_findings(change: FileChange, hits: list[secretscan.Hit], blob: bool) -> list[Finding]:
    out: list[Finding] = []
    for hit in hits:
        where = ""
        if hit.offset is not None:
            where = f" at byte {hit.offset:,} of the binary content"
        elif hit.line is None and not blob:
            where = " in the file's name"
        if secretscan.PRIVATE_KEY in hit.kinds:
            severity: Severity = "critical"
            message = f"a private key is committed here{where}"
        elif hit.strong:
            strong = sorted(k for k in hit.kinds if k not in secretscan.WEAK_DETECTORS)
            severity = "critical"
            message = (
                f"possible committed secret ({', '.join(strong)}){where}; rotate it and remove it"
            )
        else:
            severity = "medium"
            message = (
                f"a hard-coded credential-like value (secret keyword){where}; use a secret store"
            )
        in_diff = hit.line is not None and hit.line in change.changed_lines
        out.append(_finding(change, hit.line, severity, "secret", message, in_diff=in_diff))
    return out


def _scan_incomplete(change: FileChange, budget: secretscan.Budget) -> list[Finding]:
    if not budget.exhausted:
        return []
    return [
        _finding(
            change,
            None,
            "high",
            "secret",
            f"secret scan stopped after {SECRET_SCAN_LINES:,} secret-like lines: the rest of "
            "this file was not scanned",
        )
    ]


def check_secrets(change: FileChange) -> list[Finding]:
    """Secrets in the added lines (long lines in windows, none left out) and the file name."""
    budget = secretscan.Budget(SECRET_SCAN_LINES)
    items: list[secretscan.Item] = [(n, None, t) for n, t in added_lines(change)]
    hits = secretscan.scan_items(change.path, items, budget)
    hits += secretscan.scan_path(change.path, budget)
    return _secret_findings(change, hits, blob=False) + _scan_incomplete(change, budget)


def check_secrets_in_blob(
    change: FileChange, new: Iterable[bytes], old: Iterable[bytes] | None
) -> list[Finding]:
    """Secrets anywhere in the new blob (a stream of chunks) that the old one did not hold
    (binary content, or a file too large for a diff), and in the file name."""
    budget = secretscan.Budget(SECRET_SCAN_LINES)
    hits = secretscan.new_in_stream(change.path, new, old, budget)
    findings = _secret_findings(change, hits, blob=True)
    findings += _secret_findings(change, secretscan.scan_path(change.path, budget), blob=False)
    return findings + _scan_incomplete(change, budget)


def scan_failed(change: FileChange, why: str) -> Finding:
    """A blob the secret scan could not read to the end."""
    return _finding(change, None, "high", "secret", f"not secret-scanned: {why}")


def check_encoding(change: FileChange, new: bytes | None) -> list[Finding]:
    """Python reads a file in the encoding its first two lines declare (PEP 263). When that
    encoding turns the bytes into code other than what a UTF-8 reader (the model, a human on
    GitHub) sees — UTF-7's `+AAo-` is a newline — the change hides code."""
    if new is None or not content.declares_other_encoding(new):
        return []
    cookie = content.coding_cookie(new) or "?"
    try:
        as_python = new.decode(cookie)
    except (LookupError, UnicodeDecodeError, ValueError):
        return [
            _finding(
                change,
                None,
                "high",
                "encoding",
                f"declares the source encoding {cookie!r}, which Python cannot use to read it",
                in_diff=False,
            )
        ]
    as_shown = new.decode("utf-8", "replace")
    # The same ASCII characters in the same order: the declared encoding changes only letters
    # outside ASCII (Latin-1 comments, say), never the code's structure.
    if [c for c in as_python if c.isascii()] == [c for c in as_shown if c.isascii()]:
        return []
    return [
        _finding(
            change,
            1,
            "critical",
            "encoding",
            f"declares the source encoding {cookie!r}: Python reads different code than "
            "a UTF-8 reader sees",
            in_diff=1 in change.changed_lines,
        )
    ]


# More links than any system follows in one lookup (Linux 40, macOS 32): past it the checkout's
# lookups fail (ELOOP), so nothing is reached. And no system makes a link longer than PATH_MAX.
MAX_LINK_HOPS = 64
MAX_LINK_TARGET = 4096
# An in-tree path's link target, or None when no link is there (bot/git/blobs.py: link_reader).
LinkAt = Callable[[str], "str | None"]


def _no_links(path: str) -> str | None:
    return None


def link_escapes(path: str, target: str, link_at: LinkAt = _no_links) -> str | None:
    """How the link at `path` -> `target` leaves the repository's content, or None.

    Resolved as the system does on a checkout, component by component and through the tree's
    own links (`link_at`): `d/l -> ..` makes `x -> d/l/..` leave the checkout although its text
    reads as `.`. Into `.git` leaves it too: the git directory is not content, and its config
    can hold the checkout's token."""
    if target.startswith("/"):
        return "an absolute target"
    if len(target) > MAX_LINK_TARGET:
        return f"a target over {MAX_LINK_TARGET:,} characters"
    parts = [c for c in path.split("/")[:-1] if c]
    todo = deque(target.split("/"))
    hops = 0
    while todo:
        part = todo.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return "climbs out of the checkout"
            parts.pop()
            continue
        if part.casefold() == ".git":
            return "into the .git directory"
        parts.append(part)
        nxt = link_at("/".join(parts))
        if nxt is None:
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return None  # the system gives up first: nothing is reached
        if nxt.startswith("/") or len(nxt) > MAX_LINK_TARGET:
            return "through a link with an absolute or overlong target"
        parts.pop()
        todo.extendleft(reversed(nxt.split("/")))
    return None


def check_symlink(
    change: FileChange, target: bytes | None, link_at: LinkAt = _no_links
) -> list[Finding]:
    """A link whose target leaves the repository's content (`link_escapes`), also through
    other links of the tree (`link_at`, the head's)."""
    if change.new_mode != content.SYMLINK_MODE or target is None:
        return []
    text = target.decode("utf-8", "replace")
    how = link_escapes(change.path, text, link_at)
    if how is None:
        return []
    return [
        _finding(
            change,
            1,
            "high",
            "symlink",
            f"symbolic link points outside the repository ({how}: {text[:200]!r})",
            in_diff=1 in change.changed_lines,
        )
    ]


def check_conflict_markers(change: FileChange) -> list[Finding]:
    lines = list(added_lines(change))
    has_start = any(_CONFLICT_START.match(t) for _, t in lines)
    out: list[Finding] = []
    for lineno, text in lines:
        start_or_end = _CONFLICT_START.match(text) or _CONFLICT_END.match(text)
        # "=======" alone is also a reStructuredText/markdown underline: only with a start marker.
        if start_or_end or (has_start and _CONFLICT_MID.match(text)):
            out.append(
                _finding(change, lineno, "high", "merge-conflict", "leftover merge-conflict marker")
            )
    return out


def _is_python(change: FileChange, python: bool | None) -> bool:
    return change.path.endswith(PYTHON_SUFFIXES) if python is None else python


def check_python_syntax(
    change: FileChange,
    new_text: str | None,
    parses: Parses | None = None,
    old_text: str | None = None,
    python: bool | None = None,
) -> list[Finding]:
    """A syntax error the change introduces. With `old_text`, only the top-level statements
    the change touches are parsed (bot.review.pysyntax); an error is always the one Python
    reports for the whole file. `python`: the file is Python (by extension or shebang)."""
    if new_text is None or not _is_python(change, python):
        return []
    outcome = (parses or Parses()).outcome_of_change(old_text, new_text, change, change.path)
    if outcome.ok:
        return []
    if not outcome.syntax_error:
        return [
            _finding(
                change, None, "high", "syntax", f"Python file does not parse: {outcome.message}"
            )
        ]
    line = outcome.lineno
    return [
        _finding(
            change,
            line,
            "high",
            "syntax",
            f"Python syntax error: {outcome.message}",
            in_diff=line in change.changed_lines,
        )
    ]


def check_debugger(change: FileChange, python: bool | None = None) -> list[Finding]:
    if not _is_python(change, python):
        return []
    out: list[Finding] = []
    for lineno, text in added_lines(change):
        code = text.split("#", 1)[0]
        if _DEBUG_CALL.search(code):
            out.append(
                _finding(
                    change, lineno, "high", "debugging", "leftover debugger call stops the program"
                )
            )
        elif _DEBUG_IMPORT.match(code):
            out.append(_finding(change, lineno, "medium", "debugging", "leftover debugger import"))
    return out


def check_large_file(
    change: FileChange, new_text: str | None, config: ReviewConfig
) -> list[Finding]:
    if change.change != "added":
        return []
    lines = new_text.count("\n") + 1 if new_text else 0
    too_many_bytes = change.new_size > config.large_file_bytes
    too_many_lines = lines > config.large_file_lines
    if not (too_many_bytes or too_many_lines):
        return []
    what = "binary file" if change.binary else "file"
    size = f"{change.new_size:,} bytes" + (f", {lines:,} lines" if lines else "")
    return [
        _finding(
            change,
            None,
            "medium",
            "large-file",
            f"very large added {what} ({size}); is it meant to be in the repository?",
            in_diff=False,
        )
    ]


def review_file(
    change: FileChange,
    new_text: str | None,
    config: ReviewConfig,
    parses: Parses | None = None,
    old_text: str | None = None,
    *,
    python: bool | None = None,
    secrets: bool = True,
) -> list[Finding]:
    """All enabled local checks on one changed (non-deleted, non-binary) file. `secrets`
    False: the caller scans secrets itself (the pipeline scans every file, skipped or not)."""
    checks: LocalChecksConfig = config.local
    out: list[Finding] = []
    if checks.secrets and secrets:
        out += check_secrets(change)
    if checks.conflict_markers:
        out += check_conflict_markers(change)
    if checks.syntax:
        out += check_python_syntax(change, new_text, parses, old_text, python)
    if checks.debugger:
        out += check_debugger(change, python)
    if checks.large_files:
        out += check_large_file(change, new_text, config)
    return out
