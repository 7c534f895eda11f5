"""The actions/cache key for the review cache.

actions/cache entries are immutable: a key that exists is never overwritten. So every run
saves under a run-unique key and restores by prefix, newest first:

    gatebot-v1-<review hash>-<scope>-<base ref>-pr<N>-<run id>-<attempt>    saved by this run
    gatebot-v1-<review hash>-<scope>-<base ref>-pr<N>-                       the PR's own latest
    gatebot-v1-<review hash>-<scope>-<base ref>-                             the base branch's

The scope (`job_scope`) names the workflow, the job and the action invocation (check name,
working directory), so two jobs never restore each other's cache and two invocations in one
run never race for the same key (actions/cache keeps whichever saves first).
The review hash covers what makes every entry useless at once (gatebot version, models,
prompt and rules version, the cache's value format), so an upgrade starts a fresh cache
instead of restoring dead weight. Entries themselves are keyed by content inside the cache
(bot.review.normalize.cache_key), so a stale restore is only ever a miss, never a wrong hit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from bot import __version__
from bot.config.review import ReviewConfig
from bot.review.cache import VALUE_VERSION
from bot.review.prompt import rules_hash

PREFIX = "gatebot-v1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._/-]+")


def review_hash(review: ReviewConfig) -> str:
    h = hashlib.sha256()
    for part in (
        __version__,
        str(VALUE_VERSION),
        json.dumps(review.models.model_dump(), sort_keys=True),
        rules_hash(review),
    ):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _segment(value: str) -> str:
    # Cache keys may not contain commas; keep them readable and bounded (512 chars max).
    return _UNSAFE.sub("_", value).strip("_")[:100] or "none"


def job_scope(workflow: str, job: str, check_name: str, working_directory: str) -> str:
    """A short hash of who is reviewing: the workflow (its file path when the runner says it,
    else its name), the job id, the check run name and the reviewed directory."""
    h = hashlib.sha256()
    for part in (workflow, job, check_name, working_directory):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:12]


def workflow_identity(workflow_ref: str, workflow_name: str) -> str:
    """`owner/repo/.github/workflows/x.yml@refs/...` without the ref (a PR run and a run on
    its base branch are the same workflow); the workflow's name where the runner gives no ref
    (act, older GitHub Enterprise Server)."""
    path = workflow_ref.rpartition("@")[0] if "@" in workflow_ref else workflow_ref
    return path.strip() or workflow_name.strip()


@dataclass(frozen=True)
class CacheKey:
    key: str
    restore_keys: tuple[str, ...]


def cache_key(
    review: ReviewConfig,
    base_ref: str,
    pr_number: int | None,
    run_id: str,
    run_attempt: str,
    *,
    scope: str,
) -> CacheKey:
    stem = f"{PREFIX}-{review_hash(review)}-{_segment(scope)}-{_segment(base_ref)}-"
    own = f"{stem}pr{pr_number}-" if pr_number is not None else stem
    key = f"{own}{_segment(run_id)}-{_segment(run_attempt)}"
    restore = (own, stem) if own != stem else (stem,)
    return CacheKey(key=key, restore_keys=restore)
