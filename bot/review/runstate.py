"""What a review run knows as it goes: one FileState per changed file, the warnings said.

The stages fill a FileState in turn (bot/review/freestages.py: the change, its texts, the
triage decision, the local findings; bot/review/modelpass.py: the tier, the model, the cache
key, the model's findings or why it did not review the file); `FileState.result()` is the
file's line in verdict.json (bot/review/models.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.review import keys, triage
from bot.review.models import FileResult, FileStatus, Finding, NotReviewed, NotReviewedCause
from bot.review.types import FileChange

log = logging.getLogger(__name__)


@dataclass
class FileState:
    change: FileChange
    old_text: str | None
    new_text: str | None
    decision: triage.Decision
    # Raw-byte hashes of both sides (bot.review.keys): the cache key never sees decoded text.
    old_hash: str = keys.ABSENT
    new_hash: str = keys.ABSENT
    python: bool = False  # by extension or shebang (bot.review.content.language)
    local_findings: list[Finding] = field(default_factory=list)
    model_findings: list[Finding] = field(default_factory=list)
    summary: str | None = None  # the model's one line on the change (the walkthrough)
    tier: str | None = None
    model: str | None = None
    key: str | None = None
    status: FileStatus = "reviewed"
    not_reviewed: NotReviewed | None = None
    findings_omitted: int = 0  # model findings past the caps (bot/review/verdict.py)
    _changed: frozenset[int] | None = None  # the change's added lines, computed once
    # The naive before's input tokens for this file (None: deleted or no text), counted in
    # the free stages, where the text is, and on both cores.
    baseline_tokens: int | None = None

    @property
    def path(self) -> str:
        return self.change.path

    @property
    def covered(self) -> bool:
        return self.not_reviewed is None

    @property
    def changed_lines(self) -> frozenset[int]:
        if self._changed is None:
            self._changed = self.change.changed_lines
        return self._changed

    def mark_not_reviewed(self, cause: NotReviewedCause, reason: str) -> None:
        self.not_reviewed = NotReviewed(cause=cause, reason=reason)

    def result(self) -> FileResult:
        reason = self.decision.skip_reason if self.status == "skipped" else self.decision.note
        if self.not_reviewed is not None:
            reason = self.not_reviewed.reason
        elif self.decision.protected_by and self.status != "skipped":
            protected = f"protected path (matches {self.decision.protected_by})"
            reason = f"{protected}; {reason}" if reason else protected
        findings = sorted(
            [*self.local_findings, *self.model_findings],
            key=lambda f: (f.line or 0, f.severity, f.category, f.message),
        )
        return FileResult(
            path=self.path,
            old_path=self.change.old_path,
            status=self.status,
            reason=reason,
            tier=self.tier if self.status != "skipped" else None,
            model=self.model if self.status != "skipped" and self.covered else None,
            needs_human=self.decision.needs_human,
            not_reviewed=self.not_reviewed,
            summary=self.summary if self.covered else None,
            findings=findings,
            findings_omitted=self.findings_omitted,
        )


class Warnings(list[str]):
    """Warnings of the run, in the order said: logged once, listed in the summary."""

    def add(self, message: str) -> None:
        log.warning(message)
        self.append(message)
