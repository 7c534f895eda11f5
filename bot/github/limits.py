"""GitHub's documented size limits and the one way we fit text into them.

- Check run output.summary and output.text: at most 65,535 characters each.
- Check run annotations: at most 50 per create/update request (later requests append).
- Workflow-command annotations: the runner displays 10 errors, 10 warnings and 10 notices per step.
- Job summary ($GITHUB_STEP_SUMMARY): at most 1 MiB per step.
"""

from __future__ import annotations

CHECK_TEXT_LIMIT = 65_535
ANNOTATIONS_PER_REQUEST = 50
# Our own bound: past this, more annotations only cost API requests (one per 50, spaced for the
# secondary rate limit) and nobody reads them; the rest stay in the summary's findings table.
MAX_CHECK_ANNOTATIONS = 500
COMMAND_ANNOTATIONS_PER_LEVEL = 10
STEP_SUMMARY_LIMIT = 1024 * 1024


def truncate(text: str, limit: int, where: str = "the job summary and the report file") -> str:
    """Fit `text` into `limit` characters; a cut is never silent: a note says what and where."""
    if len(text) <= limit:
        return text
    # The omitted count is at most len(text), so this note length is an upper bound.
    keep = limit - len(_note(len(text), where))
    if keep <= 0:
        raise ValueError(f"limit {limit} is too small to hold the truncation note")
    # Cut at a line boundary when one is near, so a table row is not left half-drawn.
    cut = text.rfind("\n", max(0, keep - 2000), keep)
    head = text[: cut if cut > 0 else keep]
    return head + _note(len(text) - len(head), where)


def truncate_bytes(text: str, limit: int, where: str) -> str:
    """Like truncate, for limits counted in UTF-8 bytes (the step summary)."""
    if len(text.encode("utf-8")) <= limit:
        return text
    # Characters are at most 4 bytes: this character budget is always small enough.
    return truncate(text, limit // 4, where)


def _note(omitted: int, where: str) -> str:
    return f"\n\n> **Truncated:** {omitted:,} more characters did not fit here; see {where}.\n"
