"""Untrusted text made inert for each place it is written to.

File names, model answers, provider error messages and config keys come from whoever wrote
the PR or runs the endpoint. Each sink reads something different into text:
- JSON (verdict.json, request bodies): a lone surrogate (a file name that is not UTF-8, read
  by pygit2 with surrogateescape; a `\\ud800` escape in a model answer) cannot be encoded at
  all and would crash the writer: `unicode_safe` spells it out as `\\xff` / `\\ud800`;
- a terminal or the Actions log: control characters (ESC sequences recolour or hide text, a
  CR overwrites the line, a line break starts a new line), bidi and zero-width format
  characters (Trojan Source), and workflow commands: the runner reads `::cmd::` at the start
  of a line and `##[cmd]` *anywhere* in it (actions/runner `ActionCommand.TryParse`).
  `printable` escapes the characters as repr() does and breaks both command markers;
- Markdown and HTML are handled where they are written (bot/review/summary.py: escape_md).
"""

from __future__ import annotations

import re

# `##[` anywhere (the runner's v1 syntax), `::` at the start after blanks (v2).
_V1_COMMAND = re.compile(r"##\[")
_V2_COMMAND = re.compile(r"^(\s*):(?=:)")


def unicode_safe(text: str) -> str:
    """`text` encodable as UTF-8: lone surrogates written out as escapes, the rest kept."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _escape_surrogates(text)
    return text


def _escape_surrogates(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            code = ord(ch)
            # surrogateescape stands for one undecodable byte (U+DC80..U+DCFF): show the byte.
            out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def printable(text: str, keep: str = "") -> str:
    """One inert line for a terminal or a log: every non-printable character (controls, line
    and paragraph separators, format characters such as bidi overrides, surrogates) escaped
    as repr() would, and no workflow command the Actions runner would act on. `keep` lists
    characters left as they are (e.g. a line break inside an annotation's message, which the
    runner's command syntax carries as %0A)."""
    if not text.isprintable():
        text = unicode_safe(text)  # an undecodable byte of a file name reads as \xff
        text = "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
    if "##[" in text:
        text = _V1_COMMAND.sub(r"##\\[", text)
    if "::" in text:
        text = _V2_COMMAND.sub(r"\1\\:", text)
    return text


def printable_lines(text: str) -> str:
    """Like `printable` for text gatebot laid out over several lines itself (an error and its
    hint): each line made inert, the line breaks kept."""
    return "\n".join(printable(line) for line in text.split("\n"))
