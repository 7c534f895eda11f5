"""Reading a model's answer: block numbers back to the items asked, findings cleaned.

The answer names file blocks by their number in the batch (bot/review/prompt.py); anything
that names no block of the batch is ignored, a block with a malformed finding is asked again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from bot.review.cost import LONG_CONTEXT_TOKENS
from bot.review.models import Finding
from bot.review.prompt import AnswerFinding
from bot.review.types import ReviewItem, Usage
from bot.review.verdict import most_severe

log = logging.getLogger(__name__)

_MAX_MESSAGE = 2000


@dataclass
class CallResult:
    usage: Usage
    ok: dict[str, list[Finding]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    unparseable: bool = False
    summaries: dict[str, str] = field(default_factory=dict)  # cache_key -> walkthrough line
    blocked: str | None = None  # the model's safety filter refused the call (why)
    omitted: dict[str, int] = field(default_factory=dict)  # findings past the per-file cap


# Gemini's reasons for refusing a prompt or stopping an answer on its content.
_BLOCK_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY", "OTHER"}
)


def _name(value: object) -> str:
    return str(getattr(value, "value", value) or "").upper()


def blocked_reason(response: object) -> str | None:
    """Why the model's safety filter refused this call (`promptFeedback.blockReason`, or the
    candidate's `finishReason`), or None. The content caused it: not an outage."""
    feedback = getattr(response, "prompt_feedback", None)
    reason = _name(getattr(feedback, "block_reason", None))
    if reason and reason != "BLOCKED_REASON_UNSPECIFIED":
        return f"blocked by the model's safety filter (prompt: {reason})"
    candidates = getattr(response, "candidates", None) or []
    finish = _name(getattr(candidates[0], "finish_reason", None)) if candidates else ""
    if finish in _BLOCK_REASONS:
        return f"blocked by the model's safety filter (answer: {finish})"
    return None


# No Gemini model reads more than a few million tokens or answers more than a few hundred
# thousand: counts outside these bounds are not a bill but a broken or lying endpoint.
MAX_PROMPT_TOKENS = 10_000_000
MAX_ANSWER_TOKENS = 1_000_000


def _count(meta: object, name: str) -> int | None:
    value = getattr(meta, name, None)
    if value is None:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reported_usage(meta: object | None) -> Usage | None:
    """One call's usage as the answer's `usageMetadata` reports it; None when it cannot be
    true (a negative count, more than any model reads or writes, more cached than sent): the
    caller then bills its own estimate, so a lie neither crashes the arithmetic (10**400 is
    no float) nor moves the spend cap or the cost figures."""
    if meta is None:
        return Usage(calls=1)
    names = ("prompt_token_count", "candidates_token_count", "thoughts_token_count")
    prompt, candidates, thoughts = (_count(meta, n) for n in names)
    cached = _count(meta, "cached_content_token_count")
    if prompt is None or candidates is None or thoughts is None or cached is None:
        return None
    if not (0 <= cached <= prompt <= MAX_PROMPT_TOKENS):
        return None
    if not (0 <= candidates <= MAX_ANSWER_TOKENS and 0 <= thoughts <= MAX_ANSWER_TOKENS):
        return None
    output = candidates + thoughts
    long = prompt > LONG_CONTEXT_TOKENS  # Gemini's long-context price tier
    return Usage(
        calls=1,
        input_tokens=prompt,
        output_tokens=output,
        cached_tokens=cached,
        thoughts_tokens=thoughts,
        input_tokens_long=prompt if long else 0,
        output_tokens_long=output if long else 0,
        cached_tokens_long=cached if long else 0,
    )


_MAX_SUGGESTION = 10_000


def _suggestion(line: int | None, text: str | None) -> str | None:
    """A fix needs a line to replace; an oversized one is dropped, never cut in the middle."""
    if line is None or text is None or len(text) > _MAX_SUGGESTION:
        return None
    return text


def _clean_finding(item: ReviewItem, raw: AnswerFinding) -> Finding:
    line = raw.line if raw.line is not None and raw.line >= 1 else None
    end = raw.end_line if line is not None and raw.end_line and raw.end_line >= line else None
    last = end or line or 0
    category = re.sub(r"\s+", "-", raw.category.strip().lower())[:40] or "general"
    return Finding(
        path=item.path,
        line=line,
        end_line=end,
        severity=raw.severity,
        category=category,
        message=raw.message.strip()[:_MAX_MESSAGE] or "(no message)",
        source="model",
        # Only a finding on a changed line can be a line annotation; others go to the summary.
        # (checked against the changed lines, not by walking a span a model could make huge)
        in_diff=line is not None and any(line <= n <= last for n in item.changed_lines),
        # Untrusted text: bot/github/inline.py checks it before it may become a suggestion.
        suggestion=_suggestion(line, raw.suggestion),
    )


MAX_SUMMARY = 200
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def summary_line(text: str) -> str:
    """A walkthrough line from model text: one line, no control or bidi characters, bounded.
    (Markdown is escaped where it is shown, bot/review/walkthrough.py.)"""
    line = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def _block_number(value: object, count: int) -> int | None:
    """A block number of this batch (1..count), or None. JSON `true` is not the number 1."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= count:
        return value
    return None


def _shown(value: object) -> str:
    """What a log line may show of a model's block number: a number, else only its type."""
    return str(value) if isinstance(value, int | float) else type(value).__name__


def parse_answer(
    text: str | None, items: Sequence[ReviewItem], max_per_file: int | None = None
) -> CallResult:
    """Map an answer back to the items asked (block n is items[n - 1], as batch_text numbers
    them). A block is answered when `reviewed` names it or a finding does; a finding naming no
    block of the batch is ignored; a block with a malformed finding is bad (asked again).
    Past `max_per_file` findings on a block, the most severe are kept and the rest counted in
    `omitted` (the answer itself is bounded in bytes by the transport)."""
    result = CallResult(usage=Usage())
    try:
        data = json.loads(text or "")
        reviewed, raw_findings = data["reviewed"], data["findings"]
        if not isinstance(reviewed, list) or not isinstance(raw_findings, list):
            raise TypeError("reviewed and findings must be lists")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the interpreter's recursion limit.
        result.unparseable = True
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        reason = "empty answer" if not (text or "").strip() else f"unparseable answer ({why})"
        result.bad = {it.cache_key: reason for it in items}
        return result

    count = len(items)
    answered: set[int] = set()
    for value in reviewed:
        number = _block_number(value, count)
        if number is None:
            log.info("ignoring reviewed %s: no such block among %d", _shown(value), count)
            continue
        answered.add(number)

    found: dict[int, list[Finding]] = {}
    errors: dict[int, int] = {}
    for entry in raw_findings:
        named = entry.get("file") if isinstance(entry, dict) else None
        number = _block_number(named, count)
        if number is None or not isinstance(entry, dict):
            # Like a finding about a file that was not asked: never attached to any file.
            # (only the number is logged: the rest is model text)
            log.info("ignoring a finding on file %s: no such block among %d", _shown(named), count)
            continue
        # The answer model checks the shape; only the severity's spelling is forgiven first.
        if isinstance(entry.get("severity"), str):
            entry["severity"] = entry["severity"].strip().lower()
        try:
            raw = AnswerFinding.model_validate(entry)
        except ValidationError as exc:
            errors[number] = errors.get(number, 0) + exc.error_count()
            continue
        answered.add(number)  # a finding on a block says it was reviewed
        found.setdefault(number, []).append(_clean_finding(items[number - 1], raw))

    summaries = data.get("summaries") if isinstance(data, dict) else None
    for entry in summaries if isinstance(summaries, list) else []:
        number = _block_number(entry.get("file") if isinstance(entry, dict) else None, count)
        text = entry.get("text") if isinstance(entry, dict) else None
        line = summary_line(text) if isinstance(text, str) else ""
        if number is not None and line:
            result.summaries[items[number - 1].cache_key] = line

    for number, item in enumerate(items, start=1):
        if number in errors:
            result.bad[item.cache_key] = f"malformed answer for the file ({errors[number]} errors)"
        elif number in answered:
            kept = found.get(number, [])
            if max_per_file is not None and len(kept) > max_per_file:
                result.omitted[item.cache_key] = len(kept) - max_per_file
                kept = most_severe(kept, max_per_file)
            result.ok[item.cache_key] = kept
        else:
            result.bad[item.cache_key] = "missing from the answer"
    return result
