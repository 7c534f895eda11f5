"""GitHub Actions integration used by `gatebot review` (owned by the Action/check-run work).

Interface (binding for bot/cli/review.py):
- ActionsContext.from_env(env) -> ActionsContext | None   None unless GITHUB_ACTIONS == "true"
- ctx.resolve_range(base, head) -> (base, head)  from the event payload for pull_request(_target),
  else the given values (a UsageError when they are missing)
- ctx.start(head_sha)      create the check run in_progress (never raises: falls back silently to
                           workflow commands on 403 and remembers that)
- ctx.finish(verdict, summary_md, out_dir) -> int   complete the check run / annotations / step
                           summary / $GITHUB_OUTPUT; returns the exit code the job should end with
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.review.models import Verdict


class ActionsContext:
    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionsContext | None:
        return None

    def resolve_range(self, base: str | None, head: str | None) -> tuple[str, str]:
        raise NotImplementedError

    def start(self, head_sha: str) -> None:
        raise NotImplementedError

    def finish(self, verdict: Verdict, summary_md: str, out_dir: Path) -> int:
        raise NotImplementedError
