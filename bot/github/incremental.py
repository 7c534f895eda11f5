"""What a push changed since the previous head, and what this run sent: the summary's
"Since the last push" section (pull_request `synchronize`).

The review cache makes a re-push cheap by itself: a file whose (old, new) content pair was
reviewed before is a hit. This makes it visible and exact. The previous head is the payload's
`before`; its tree is compared with the new head's (pygit2, names only), and every file of
the change is listed as changed since the last push or carried over, next to what this run did
with it: sent to the model, served from the cache, or skipped. A carried-over file that was
sent anyway (an evicted entry, another model) is counted and named, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from bot.git.diff import open_repo
from bot.review.models import FileResult, Verdict
from bot.review.summary import code

MAX_ROWS = 200
_DOING = {"reviewed": "sent to the model", "cached": "from cache", "skipped": "skipped"}


@dataclass(frozen=True)
class Since:
    before: str
    changed: tuple[FileResult, ...]  # files of the PR whose content changed since `before`
    carried: tuple[FileResult, ...]  # files of the PR unchanged since `before`
    unavailable: str | None = None  # why no comparison could be made

    @property
    def resent(self) -> list[FileResult]:
        return [f for f in self.carried if f.status == "reviewed" and f.covered]


def _tree(repo: pygit2.Repository, sha: str) -> pygit2.Tree | None:
    try:
        return repo[sha].peel(pygit2.Commit).tree
    except (KeyError, ValueError, pygit2.GitError):
        return None


def since(repo_path: Path, before: str, verdict: Verdict) -> Since:
    repo = open_repo(repo_path)
    old, new = _tree(repo, before), _tree(repo, verdict.head_sha)
    if old is None or new is None:
        why = "the previous head is not in this clone (a force-push, or a shallow fetch)"
        return Since(before, (), tuple(verdict.files), why)
    touched: set[str] = set()
    for delta in old.diff_to_tree(new).deltas:
        touched.update({delta.old_file.path, delta.new_file.path})
    changed = tuple(f for f in verdict.files if f.path in touched)
    carried = tuple(f for f in verdict.files if f.path not in touched)
    return Since(before, changed, carried)


def since_md(s: Since, verdict: Verdict) -> str:
    head = f"### Since the last push ({code(s.before[:12])} → {code(verdict.head_sha[:12])})\n\n"
    if s.unavailable is not None:
        return head + f"Not compared: {s.unavailable}. Every file was looked up by content.\n"
    sent = sum(1 for f in s.changed if f.status == "reviewed")
    text = (
        f"{len(s.changed)} file{'s' if len(s.changed) != 1 else ''} changed since the last push "
        f"({sent} sent to the model, {len(s.changed) - sent} from cache or skipped); "
        f"{len(s.carried)} carried over unchanged"
    )
    resent = s.resent
    text += (
        f", of which {len(resent)} sent again (not in the restored cache).\n"
        if resent
        else ", none sent again.\n"
    )
    rows = [(f, "changed") for f in s.changed] + [(f, "carried over") for f in s.carried]
    table = [
        "",
        "<details><summary>Files</summary>",
        "",
        "| File | Since the last push | This run |",
        "|---|---|---|",
    ]
    for f, what in rows[:MAX_ROWS]:
        doing = _DOING[f.status] if f.covered else "not reviewed"
        table.append(f"| {code(f.path)} | {what} | {doing} |")
    if len(rows) > MAX_ROWS:
        table.append(f"\n… {len(rows) - MAX_ROWS} more in verdict.json.")
    return head + text + "\n".join(table) + "\n\n</details>\n"


def with_since(summary_md: str, section: str) -> str:
    """`section` placed before the summary's file table (at the end when there is none)."""
    marker = "\n### Files ("
    at = summary_md.find(marker)
    if at < 0:
        return summary_md.rstrip("\n") + "\n\n" + section
    return summary_md[: at + 1] + section + "\n" + summary_md[at + 1 :]
