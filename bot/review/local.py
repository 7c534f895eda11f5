"""The local reviewer: deterministic checks that run on every review, with or without a model.

Its findings are always part of the verdict; a model can add findings, never remove these.
Line-based checks look only at added lines, so a PR is not blamed for what it did not touch.
Secret values are never copied into a finding's message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING

from bot.config.review import LocalChecksConfig, ReviewConfig, Severity
from bot.review.models import Finding
from bot.review.pysyntax import Parses
from bot.review.types import FileChange

if TYPE_CHECKING:
    from detect_secrets.plugins.base import BasePlugin

# Entropy detectors flag hashes, lock-file integrity strings and test fixtures far too often
# to gate on; a public IP address is not a secret.
_NOISY_DETECTORS = frozenset(
    {"Base64 High Entropy String", "Hex High Entropy String", "Public IP (ipv4)"}
)
# A keyword match (password = "...") is a hint, not proof: reported, not blocking by default.
_WEAK_DETECTORS = frozenset({"Secret Keyword"})

_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_CONFLICT_START = re.compile(r"^<{7}(?: |$)")
_CONFLICT_END = re.compile(r"^>{7}(?: |$)")
_CONFLICT_MID = re.compile(r"^={7}$")
_DEBUG_CALL = re.compile(
    r"(?<![\w.])(?:breakpoint\s*\(\s*\)|i?pdb\.set_trace\s*\(|pudb\.set_trace\s*\()"
)
_DEBUG_IMPORT = re.compile(r"^\s*(?:import\s+i?pdb\b|from\s+i?pdb\s+import\b)")
# Lines longer than this are minified data, not code; scanning them only costs time.
_MAX_SCANNED_LINE = 4000

PYTHON_SUFFIXES = (".py", ".pyi")


@cache
def _secret_plugins() -> tuple[BasePlugin, ...]:
    # Imported on first use: detect-secrets (and the requests stack it pulls in) is a tenth of
    # a second that only a review with the secrets check on needs.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    mapping: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    return tuple(cls() for name, cls in sorted(mapping.items()) if name not in _NOISY_DETECTORS)


_INLINE_FLAGS = ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.VERBOSE, "x"))
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def _any_of(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """One regex matching where any of `patterns` matches (one search per file instead of
    ~50); None when they cannot be combined (a back-reference would be renumbered)."""
    if any(_BACKREFERENCE.search(p.pattern) for p in patterns):
        return None
    parts = []
    for p in patterns:
        flags = "".join(letter for flag, letter in _INLINE_FLAGS if p.flags & flag)
        parts.append(f"(?{flags}:{p.pattern})" if flags else f"(?:{p.pattern})")
    try:
        return re.compile("|".join(parts), re.MULTILINE)
    except re.error:
        return None


@cache
def _quick_check() -> re.Pattern[str] | tuple[re.Pattern[str], ...] | None:
    patterns = _prefilter()
    if patterns is None:
        return None
    return _any_of(patterns) or patterns


@cache
def _prefilter() -> tuple[re.Pattern[str], ...] | None:
    """Patterns of which one must occur in a file's added text for any detector to fire.

    Searching the whole added text once per pattern is much cheaper than running every
    detector on every line; only files that pass are scanned line by line. Multiline mode
    keeps per-line anchors meaningful, so this finds a superset of what the detectors find.
    None (scan every line) when a detector does not expose its patterns.
    """
    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.keyword import KeywordDetector

    out: list[re.Pattern[str]] = [_PEM_PRIVATE_KEY]
    for plugin in _secret_plugins():
        if isinstance(plugin, KeywordDetector):
            out.append(re.compile(keyword.DENYLIST_REGEX, re.IGNORECASE))
            continue
        denylist = getattr(plugin, "denylist", None)
        if not denylist:
            return None
        out += [re.compile(p.pattern, p.flags | re.MULTILINE) for p in denylist]
    return tuple(out)


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


def check_secrets(change: FileChange) -> list[Finding]:
    lines = [(n, t) for n, t in added_lines(change) if len(t) <= _MAX_SCANNED_LINE]
    quick = _quick_check()
    if quick is not None:
        block = "\n".join(t for _, t in lines)
        if isinstance(quick, re.Pattern):
            if not quick.search(block):
                return []
        elif not any(p.search(block) for p in quick):
            return []
    out: list[Finding] = []
    for lineno, text in lines:
        if _PEM_PRIVATE_KEY.search(text):
            out.append(
                _finding(change, lineno, "critical", "secret", "a private key is committed here")
            )
            continue
        kinds: set[str] = set()
        for plugin in _secret_plugins():
            for secret in plugin.analyze_line(filename=change.path, line=text, line_number=lineno):
                kinds.add(str(secret.type))
        strong = sorted(kinds - _WEAK_DETECTORS)
        if strong:
            out.append(
                _finding(
                    change,
                    lineno,
                    "critical",
                    "secret",
                    f"possible committed secret ({', '.join(strong)}); rotate it and remove it",
                )
            )
        elif kinds:
            out.append(
                _finding(
                    change,
                    lineno,
                    "medium",
                    "secret",
                    "a hard-coded credential-like value (secret keyword); use a secret store",
                )
            )
    return out


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


def check_python_syntax(
    change: FileChange,
    new_text: str | None,
    parses: Parses | None = None,
    old_text: str | None = None,
) -> list[Finding]:
    """A syntax error the change introduces. With `old_text`, only the top-level statements
    the change touches are parsed (bot.review.pysyntax); an error is always the one Python
    reports for the whole file."""
    if new_text is None or not change.path.endswith(PYTHON_SUFFIXES):
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


def check_debugger(change: FileChange) -> list[Finding]:
    if not change.path.endswith(PYTHON_SUFFIXES):
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
) -> list[Finding]:
    """All enabled local checks on one changed (non-deleted, non-binary) file."""
    checks: LocalChecksConfig = config.local
    out: list[Finding] = []
    if checks.secrets:
        out += check_secrets(change)
    if checks.conflict_markers:
        out += check_conflict_markers(change)
    if checks.syntax:
        out += check_python_syntax(change, new_text, parses, old_text)
    if checks.debugger:
        out += check_debugger(change)
    if checks.large_files:
        out += check_large_file(change, new_text, config)
    return out
