"""Inline review comments: which findings become comments on the PR's diff, and their text.

Pure functions over the verdict and the PR diff's hunks (bot/github/difflines.py). GitHub
accepts a review comment only on a line inside one of the file's diff hunks (context lines
included), and a multi-line comment only inside a single hunk; a committable suggestion replaces
exactly the commented lines. So a comment is planned only where GitHub takes it, and a finding's
fix (model output: untrusted) becomes a ```suggestion block only when its whole range lies in
one hunk and the text is safe to commit: no NUL or other control characters, no bidirectional
overrides (Trojan Source), bounded size, and not identical to the lines it replaces.

Each comment ends with a marker carrying the finding's fingerprint (path, category and the
text of the lines it is about, plus the fix), so a later run recognises its own comments: a
finding still present is not posted again; one that is gone gets its comment marked resolved.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.github.annotations import severity_rank
from bot.github.pulls import NewComment, PostedComment
from bot.review.models import Finding, Verdict
from bot.review.summary import code, escape_md

CommentsMode = Literal["off", "findings", "suggestions"]
MAX_COMMENTS_PER_REVIEW = 30
MAX_SUGGESTION_CHARS = 10_000
MAX_SUGGESTION_LINES = 200
_ICONS = {"critical": "🔴", "high": "🔴", "medium": "🟠", "low": "🟡", "info": "🔵"}
_MARKER = re.compile(r"\n<!-- gatebot:finding fp=([0-9a-f]{16})( state=resolved)? -->\s*\Z")
# C0/C1 controls other than tab and newline, and the bidirectional overrides and isolates.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class FileLines:
    """The PR diff of one file as GitHub shows it: hunk ranges in the new file, its lines."""

    hunks: tuple[tuple[int, int], ...]
    lines: tuple[str, ...]

    def hunk_of(self, start: int, end: int) -> tuple[int, int] | None:
        return next((h for h in self.hunks if h[0] <= start <= end <= h[1]), None)


@dataclass(frozen=True)
class Planned:
    fingerprint: str
    comment: NewComment
    has_suggestion: bool
    severity: str


@dataclass(frozen=True)
class Sync:
    post: list[Planned]
    kept: list[PostedComment]  # ours, still reported: not posted again
    stale: list[PostedComment]  # ours, no longer reported: to be marked resolved
    dropped: int  # planned beyond MAX_COMMENTS_PER_REVIEW


def fingerprint(f: Finding, lines: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in (f.path, f.category.lower(), "\n".join(lines).strip(), f.suggestion or ""):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def marker(fp: str, resolved: bool = False) -> str:
    return f"\n<!-- gatebot:finding fp={fp}{' state=resolved' if resolved else ''} -->"


def parse_marker(body: str) -> tuple[str, bool] | None:
    """(fingerprint, resolved) of one of our comments; None for anyone else's."""
    m = _MARKER.search(body)
    return (m.group(1), m.group(2) is not None) if m else None


def clean_suggestion(text: str, current: Sequence[str]) -> str | None:
    """The fix as it can be committed, or None when it is unsafe, oversized or a no-op."""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\r\n", "\n")
    text = text.removesuffix("\n")
    if _UNSAFE.search(text.replace("\t", " ")) or "\r" in text:
        return None
    if len(text) > MAX_SUGGESTION_CHARS or text.count("\n") >= MAX_SUGGESTION_LINES:
        return None
    if text == "\n".join(current):
        return None
    return text


def suggestion_block(text: str) -> str:
    """A ```suggestion fence no backtick run inside `text` can close early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}suggestion\n{text}\n{fence}" if text else f"{fence}suggestion\n{fence}"


def headline(f: Finding) -> str:
    icon = _ICONS.get(f.severity, "⚪")
    return f"{icon} **{f.severity}** · {escape_md(f.category, 40)}: {escape_md(f.message, 1000)}"


def body_for(f: Finding, fp: str, suggestion: str | None, head_sha: str) -> str:
    parts = [headline(f)]
    if suggestion is not None:
        parts.append(suggestion_block(suggestion))
        hint = "Commit the suggestion from here, or reply to discuss."
    else:
        hint = "Reply to discuss."
    parts.append(f"<sub>gatebot on {code(head_sha[:12])}. {hint}</sub>")
    return "\n\n".join(parts) + marker(fp)


def resolved_body(original: str, fp: str, head_sha: str) -> str:
    first = original.split("\n", 1)[0]
    return f"✅ **Resolved**: no longer reported on {code(head_sha[:12])}.\n\n~~{first}~~" + marker(
        fp, resolved=True
    )


def _plan_one(f: Finding, fl: FileLines, mode: CommentsMode, head_sha: str) -> Planned | None:
    if f.line is None or f.line > len(fl.lines):
        return None
    end = f.end_line if f.end_line is not None and f.end_line >= f.line else f.line
    fits = end <= len(fl.lines)  # a range past the end of the file is a confused answer
    end = min(end, len(fl.lines))
    current = fl.lines[f.line - 1 : end]
    fix = None
    if f.suggestion is not None and fits and fl.hunk_of(f.line, end) is not None:
        fix = clean_suggestion(f.suggestion, current)
    if fix is None and mode == "suggestions":
        return None
    if fix is None and fl.hunk_of(f.line, end) is None:
        if fl.hunk_of(f.line, f.line) is None:
            return None  # outside every hunk: the check run's annotation carries it
        end = f.line
        current = fl.lines[f.line - 1 : end]
    fp = fingerprint(f, current)
    start = f.line if end > f.line else None
    body = body_for(f, fp, fix, head_sha)
    return Planned(fp, NewComment(f.path, end, start, body), fix is not None, f.severity)


def plan(verdict: Verdict, files: Mapping[str, FileLines], mode: CommentsMode) -> list[Planned]:
    """The comments this verdict's findings make on the PR diff, most severe first."""
    if mode == "off":
        return []
    out: dict[str, Planned] = {}
    for fr in verdict.files:
        fl = files.get(fr.path)
        if fl is None:
            continue
        for f in fr.findings:
            p = _plan_one(f, fl, mode, verdict.head_sha)
            if p is not None and p.fingerprint not in out:
                out[p.fingerprint] = p
    order = sorted(out.values(), key=lambda p: (p.comment.path, p.comment.line))
    return sorted(order, key=lambda p: -severity_rank(p.severity))


def ours(posted: Iterable[PostedComment]) -> dict[str, tuple[PostedComment, bool]]:
    """Our own thread-opening comments by fingerprint: (comment, resolved already)."""
    found: dict[str, tuple[PostedComment, bool]] = {}
    for c in posted:
        if c.in_reply_to is not None or c.author_type != "Bot":
            continue
        parsed = parse_marker(c.body)
        if parsed is not None:
            fp, resolved = parsed
            if fp not in found or not resolved:
                found[fp] = (c, resolved)
    return found


def reconcile(
    planned: Sequence[Planned],
    posted: Iterable[PostedComment],
    covered: set[str],
    in_pr: set[str],
) -> Sync:
    """What to post and what to resolve. A finding is gone only where the gate looked this
    run (a covered file) or the file left the PR: an outage resolves nothing."""
    existing = ours(posted)
    open_fps = {fp: c for fp, (c, resolved) in existing.items() if not resolved}
    wanted = {p.fingerprint for p in planned}
    fresh = [p for p in planned if p.fingerprint not in open_fps]
    looked = [c for fp, c in open_fps.items() if fp not in wanted]
    stale = [c for c in looked if c.path in covered or c.path not in in_pr]
    kept = [c for fp, c in open_fps.items() if fp in wanted]
    return Sync(
        post=fresh[:MAX_COMMENTS_PER_REVIEW],
        kept=kept,
        stale=stale,
        dropped=max(0, len(fresh) - MAX_COMMENTS_PER_REVIEW),
    )
