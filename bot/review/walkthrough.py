"""The walkthrough: one line per changed file on what the change does, in the summary.

The lines come from the same model calls as the review (`summaries` in the answer,
bot/review/prompt.py), so they cost a few output tokens per file and no extra call; cached
files keep the line stored with their review. The text is the model's (or the restored
cache's): re-cleaned to one printable line and escaped for markdown here. Collapsed under a
`<details>` element, and bounded so the check run's 65,535-character summary keeps room for
the verdict and the findings.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.review.models import FileResult
from bot.review.providers.answer import summary_line
from bot.review.summary import code, escape_md

MAX_WALKTHROUGH_CHARS = 12_000


def walkthrough_md(files: Sequence[FileResult], limit: int = MAX_WALKTHROUGH_CHARS) -> str:
    """A collapsed table of the files that have a summary line; "" when none has."""
    rows = [(fr.path, summary_line(fr.summary)) for fr in files if fr.summary]
    rows = [(path, line) for path, line in rows if line]
    if not rows:
        return ""
    head = (
        f"<details><summary><b>Walkthrough</b>: what changed in {len(rows)} "
        f"file{'s' if len(rows) != 1 else ''}</summary>\n\n| File | Change |\n|---|---|\n"
    )
    body: list[str] = []
    used = len(head)
    for i, (path, line) in enumerate(rows):
        row = f"| {code(path)} | {escape_md(line, 300)} |\n"
        if used + len(row) > limit:
            body.append(f"\n… and {len(rows) - i} more in verdict.json (`files[].summary`).\n")
            break
        body.append(row)
        used += len(row)
    return head + "".join(body) + "\n</details>\n"
