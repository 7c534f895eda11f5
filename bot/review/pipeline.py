"""The review gate, end to end: diff → triage → local reviewer → route → cache → batch →
provider → merge → cache store → verdict → metrics → summary.

Each stage lives in its own module; this one only wires them and keeps the per-file state.
Infrastructure failures (provider down, cache unusable, history unwritable) never crash the
run: they degrade it and say so.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pygit2

from bot.config.env import GEMINI_KEYS, first_set
from bot.config.model import GatebotConfig
from bot.config.review import ReviewConfig
from bot.errors import InfrastructureError
from bot.git import attributes, blobs
from bot.git.diff import (
    ChangedFile,
    ChangeRange,
    change_range,
    count_changes,
    diff_files,
    hunks_between,
    open_repo,
)
from bot.review import content, keys, local, secretscan, triage
from bot.review.accounting import cost_updates, fallback_warnings, naive_baseline
from bot.review.batch import make_items, plan
from bot.review.budget import call_cap
from bot.review.cache import ReviewCache
from bot.review.cost import Spend, baseline_file_tokens
from bot.review.fanout import fork_map, usable_cores
from bot.review.models import (
    FileResult,
    FileStatus,
    Finding,
    Metrics,
    NotReviewed,
    NotReviewedCause,
    Verdict,
)
from bot.review.prompt import PROMPT_VERSION, rules_hash
from bot.review.pysyntax import Parses
from bot.review.route import route, tiers_of
from bot.review.summary import render_summary
from bot.review.tokens import Calibration, load_calibration
from bot.review.types import (
    Batch,
    FileChange,
    ModelFallback,
    ModelPlan,
    Provider,
    ReviewItem,
    Usage,
)
from bot.review.verdict import compute_metrics, decide, most_severe

log = logging.getLogger(__name__)

NO_KEY_REASON = "no GEMINI_API_KEY or GOOGLE_API_KEY set"
NO_MODEL_REASON = (
    "not reviewed by a model: no GEMINI_API_KEY or GOOGLE_API_KEY in this run (fork PRs get no "
    "secrets); only the local checks ran"
)
# From this many changed files on, the free stages are shared with a forked worker: below,
# forking and sending the results back cost more than the second core saves.
PARALLEL_MIN_FILES = 200


@dataclass
class _File:
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


@dataclass
class ReviewRun:
    verdict: Verdict
    summary_md: str
    reasons: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)


@dataclass
class _ModelStats:
    usage: Usage = field(default_factory=Usage)
    spend: Spend = field(default_factory=Spend)
    batches: int = 0
    files_answered: int = 0  # sent and fully answered (all parts)
    plan: ModelPlan | None = None
    fallbacks: list[ModelFallback] = field(default_factory=list)


class _Warnings(list[str]):
    def add(self, message: str) -> None:
        log.warning(message)
        self.append(message)


def _free_stages(
    repo_path: Path,
    git_repo: pygit2.Repository,
    rng: ChangeRange,
    review: ReviewConfig,
    workers: int | None,
    keep_content: bool = True,
) -> list[_File]:
    """Diff, triage and the local reviewer: on a large change, shared between two cores.

    `keep_content=False` (no model will see the files): a worker sends back its files without
    their texts and hunks, which nothing after these stages reads then (half the pickling)."""
    parts = workers or 1
    if workers is None:
        large = count_changes(git_repo, rng.merge_base_sha, rng.head_sha) >= PARALLEL_MIN_FILES
        parts = 2 if large and usable_cores() >= 2 else 1

    def share(k: int) -> list[_File]:
        repo = git_repo if k == 0 else open_repo(repo_path)  # libgit2 state is per process
        parses = Parses()  # triage and the syntax check share parse results
        files = _load_files(repo, rng, review, parses, (k, parts))
        _run_local(files, review, parses)
        for f in files:
            if f.change.change != "deleted" and f.new_text is not None:
                f.baseline_tokens = baseline_file_tokens(f.path, f.new_text)
        if k != 0 and not keep_content:
            for f in files:
                f.old_text = f.new_text = None
                f.change = replace(f.change, hunks=())
        return files

    files = [f for part in fork_map(share, parts) for f in part]
    files.sort(key=lambda f: f.path)
    return files


def _load_files(
    repo: pygit2.Repository,
    rng: ChangeRange,
    review: ReviewConfig,
    parses: Parses,
    part: tuple[int, int] = (0, 1),
) -> list[_File]:
    changed = diff_files(
        repo,
        rng.merge_base_sha,
        rng.head_sha,
        review.context_lines,
        keep_bytes=review.max_file_bytes,
        part=part,
        max_blob_bytes=review.max_file_bytes,
    )
    rules = triage.Rules.from_config(review)
    paths = [p for c in changed for p in (c.change.path, c.change.old_path) if p]
    # Policy comes from the base, never from the PR's head (bot.git.attributes).
    view = (
        attributes.policy_view(repo)
        if attributes.may_have_attributes(repo, rng.policy_sha, paths)
        else None
    )

    def attrs_of(path: str) -> triage.Attributes:
        if view is None:
            return triage.Attributes()
        base = rng.policy_sha
        return triage.Attributes(
            generated=attributes.attribute_set(view, base, path, "linguist-generated"),
            vendored=attributes.attribute_set(view, base, path, "linguist-vendored"),
            diff_disabled=attributes.diff_disabled(view, base, path),
        )

    files: list[_File] = []
    for c in changed:
        change = c.change
        new_data = c.new_data
        if c.too_large and change.new_oid and change.new_size <= review.max_file_bytes:
            # Only the old side is over the limit: the new one can still be reviewed whole.
            new_data = blobs.read_bytes(repo, change.new_oid, review.max_file_bytes)
        contents = triage.Contents(c.old_data, new_data, c.too_large, c.unreadable)
        old_attrs = attrs_of(change.old_path) if change.old_path else None
        decision = triage.triage(
            change, contents, rules, attrs_of(change.path), parses, old_attrs=old_attrs
        )
        if decision.whole_file:
            change = replace(change, hunks=hunks_between(None, new_data, review.context_lines))
        old_text = new_text = None
        if not change.binary:  # each blob was read once, by the diff
            old_text = blobs.as_text(c.old_data)
            new_text = blobs.as_text(new_data)
        f = _File(
            change,
            old_text,
            new_text,
            decision,
            old_hash=keys.content_hash(c.old_data),
            new_hash=keys.content_hash(new_data),
            python=content.language(change.path, new_data) == "python",
            not_reviewed=decision.not_reviewed,
        )
        if decision.skip_reason is not None:
            f.status = "skipped"
        f.local_findings += decision.findings
        if f.status != "skipped":  # the checks that need the bytes: the encoding, a link target
            if review.local.syntax and f.python:
                f.local_findings += local.check_encoding(change, new_data)
            f.local_findings += local.check_symlink(change, new_data)
        files.append(f)
        if review.local.secrets and change.change != "deleted":
            f.local_findings += _scan_secrets(repo, c, change, f)
    return files


def _scan_secrets(
    repo: pygit2.Repository, c: ChangedFile, change: FileChange, f: _File
) -> list[Finding]:
    """Every changed byte, whatever triage decided: the added lines of a diff; a whole blob
    (binary content, or over review.max_file_bytes: streamed) against its old side."""
    if change.hunks or (not change.binary and not c.too_large and f.new_text is not None):
        return local.check_secrets(change)
    if change.new_mode == content.SUBMODULE_MODE or c.unreadable or change.new_oid is None:
        return local.check_secrets(change)  # the path only: there are no bytes to read
    new: Iterable[bytes]
    old: Iterable[bytes] | None
    if c.too_large:
        new = blobs.stream(repo, change.new_oid)
        old = blobs.stream(repo, change.old_oid) if change.old_oid else None
    elif c.new_data is not None:
        new = secretscan.chunked(c.new_data)
        old = secretscan.chunked(c.old_data) if c.old_data is not None else None
    else:
        return local.check_secrets(change)
    try:
        return local.check_secrets_in_blob(change, new, old)
    except (ValueError, OSError) as exc:
        return [*local.check_secrets(change), local.scan_failed(change, str(exc))]


def _run_local(files: list[_File], review: ReviewConfig, parses: Parses) -> None:
    for f in files:
        if f.change.change == "deleted":
            continue
        if f.status != "skipped":
            f.local_findings += local.review_file(
                f.change,
                f.new_text,
                review,
                parses,
                old_text=f.old_text,
                python=f.python,
                secrets=False,  # scanned in _load_files, for every file
            )
            continue
        # Skipped and not-reviewed files cost no model call, but a huge blob is still worth
        # knowing about (their secrets were scanned with the rest, in _load_files).
        huge = triage.too_large(f.change, review.max_file_bytes)
        if review.local.large_files and (f.change.binary or huge):
            f.local_findings += local.check_large_file(f.change, None, review)


def _key(f: _File, model: str, review: ReviewConfig, rules: str) -> str:
    return keys.cache_key(
        path=f.path,
        old_path=f.change.old_path,
        old_hash=f.old_hash,
        new_hash=f.new_hash,
        old_mode=f.change.old_mode,
        new_mode=f.change.new_mode,
        view="whole" if f.decision.whole_file else "diff",
        model=model,
        prompt_version=PROMPT_VERSION,
        rules_hash=rules,
        context_lines=review.context_lines,
    )


def _assign_keys(
    files: list[_File], review: ReviewConfig, plan: ModelPlan | None = None
) -> list[_File]:
    todo = [f for f in files if f.status != "skipped"]
    for f in todo:
        f.tier, f.model = route(f.change, f.new_text, review, plan)
        # Per file: a per-path instruction changes the keys of the files it applies to only.
        f.key = _key(f, f.model, review, rules_hash(review, f.path))
    return todo


def _model_finding(finding: Finding, f: _File) -> Finding:
    """A model finding attached to file `f`: our path, our idea of what the diff changed."""
    in_diff = finding.line is not None and finding.line in f.changed_lines
    return finding.model_copy(update={"path": f.path, "in_diff": in_diff, "source": "model"})


def _review_with_model(
    todo: list[_File],
    provider: Provider,
    cache: ReviewCache,
    review: ReviewConfig,
    warnings: _Warnings,
    calibration: Calibration,
) -> _ModelStats:
    stats = _ModelStats()
    misses: list[_File] = []
    # LRU eviction makes every hit a write (its access time): one transaction for all.
    with cache.batch():
        for f in todo:
            assert f.key is not None and f.model is not None
            hit = cache.get(f.key)
            if hit is not None:
                f.status = "cached"
                f.model = hit.model
                f.model_findings = [_model_finding(x, f) for x in hit.findings]
                f.summary = hit.summary
            else:
                misses.append(f)
    if not misses:
        return stats

    item_owner: dict[str, _File] = {}
    items_of: dict[str, list[ReviewItem]] = defaultdict(list)
    items: list[ReviewItem] = []
    for f in misses:
        assert f.key is not None and f.tier is not None and f.model is not None
        for item in make_items(f.change, f.tier, f.model, f.key, review, calibration=calibration):
            item_owner[item.cache_key] = f
            items_of[f.path].append(item)
            items.append(item)
    batches: list[Batch] = plan(items, review, calibration)
    stats.batches = len(batches)
    for batch in batches:
        # pack() may move a lower tier's files into a stronger model's call: name who reviewed.
        for item in batch.items:
            item_owner[item.cache_key].model = batch.model

    answered: dict[str, list[Finding]] = {}
    summaries: dict[str, str] = {}
    failed: dict[str, str] = {}
    causes: dict[str, NotReviewedCause] = {}
    try:
        outcomes = provider.review(batches)
    except InfrastructureError as exc:
        outcomes = []
        warnings.add(f"the model provider failed: {exc.message}")
        failed = {item.cache_key: exc.message for item in items}
    for outcome in outcomes:
        answered.update(outcome.findings)
        summaries.update(outcome.summaries)
        failed.update(outcome.failed)
        stats.fallbacks += outcome.fallbacks
        for key, model in outcome.answered_by.items():
            if key in item_owner:
                item_owner[key].model = model  # a fallback model reviewed (part of) it
        causes.update(outcome.causes)
        for key, n in outcome.omitted.items():
            if key in item_owner:
                item_owner[key].findings_omitted += n
        for model, usage in outcome.usage_by_model.items():
            stats.usage = stats.usage + usage
            stats.spend.add(model, usage, review.prices)

    by_path = {f.path: f for f in misses}
    by_old_path = {f.change.old_path: f for f in misses if f.change.old_path}
    for key, findings in answered.items():
        if key not in item_owner:
            warnings.add(f"the provider answered for an item it was not asked about ({key[:16]})")
            continue
        for finding in findings:
            owner = by_path.get(finding.path) or by_old_path.get(finding.path)
            if owner is None:
                warnings.add(
                    f"dropped a model finding on {finding.path!r}: not a file sent for review"
                )
                continue
            owner.model_findings.append(_model_finding(finding, owner))

    for f in misses:  # a file split into parts: its parts' lines, in order
        lines = [summaries[it.cache_key] for it in items_of[f.path] if it.cache_key in summaries]
        f.summary = "; ".join(lines) if lines else None

    for f in misses:  # a file split into parts may gather more than one part's share
        _keep_most_severe(f, review.max_findings_per_file)
    fell_back = {
        item_owner[k].path: m for o in outcomes for k, m in o.answered_by.items() if k in item_owner
    }
    with cache.batch():
        for f in misses:
            _store_answer(f, items_of, answered, failed, causes, cache, stats)
            gone_to = fell_back.get(f.path)
            if f.covered and gone_to is not None:
                # Reviewed by a fallback model: also stored under that model's key, the one the
                # next run routes to (the gone model is remembered in the models list).
                own = [x for x in f.model_findings if x.path == f.path]
                key = _key(f, gone_to, review, rules_hash(review, f.path))
                cache.put(key, gone_to, own, summary=f.summary)
    return stats


def _keep_most_severe(f: _File, limit: int) -> None:
    if len(f.model_findings) > limit:
        f.findings_omitted += len(f.model_findings) - limit
        f.model_findings = most_severe(f.model_findings, limit)


def _cap_findings(files: list[_File], review: ReviewConfig, warnings: _Warnings) -> None:
    """At most review.max_findings model findings in the run (the most severe), and say what
    the caps dropped. Local findings are never dropped: the model cannot crowd them out."""
    everything = [x for f in files for x in f.model_findings]
    if len(everything) > review.max_findings:
        kept = {id(x) for x in most_severe(everything, review.max_findings)}
        for f in files:
            before = len(f.model_findings)
            f.model_findings = [x for x in f.model_findings if id(x) in kept]
            f.findings_omitted += before - len(f.model_findings)
    omitted = sum(f.findings_omitted for f in files)
    if omitted:
        warnings.add(
            f"the model reported {omitted:,} more finding(s) than the caps keep "
            f"(review.max_findings_per_file = {review.max_findings_per_file}, "
            f"review.max_findings = {review.max_findings}): the most severe are listed and "
            "counted in findings_omitted, the rest were dropped"
        )


def _store_answer(
    f: _File,
    items_of: Mapping[str, list[ReviewItem]],
    answered: Mapping[str, list[Finding]],
    failed: Mapping[str, str],
    causes: Mapping[str, NotReviewedCause],
    cache: ReviewCache,
    stats: _ModelStats,
) -> None:
    """Mark `f` covered or not from the provider's answers, and cache a complete answer."""
    problems = [
        (causes.get(item.cache_key, "provider"), failed.get(item.cache_key, "no answer"))
        for item in items_of[f.path]
        if item.cache_key not in answered or item.cache_key in failed
    ]
    if problems:
        # A file split into parts takes the cause that can least be waved through.
        order = ("content", "budget", "provider")
        cause, why = min(problems, key=lambda p: order.index(p[0]) if p[0] in order else 0)
        f.mark_not_reviewed(cause, f"not reviewed by the model: {why}")
        return
    assert f.key is not None and f.model is not None
    own = [x for x in f.model_findings if x.path == f.path]
    cache.put(f.key, f.model, own, summary=f.summary)
    stats.files_answered += 1


def _plan_models(
    provider: Provider, review: ReviewConfig, cache_dir: Path, warnings: _Warnings
) -> ModelPlan | None:
    """Tiers → live models, once per run (a rejected key leaves the plan out: every call is
    then refused the same way, and the files are listed as not covered)."""
    try:
        return provider.plan_models(tiers_of(review), list(review.fallback), cache_dir)
    except InfrastructureError as exc:
        warnings.add(f"the model provider failed: {exc.message}")
        return None


def _provider_label(provider: Provider | None, files: list[_File]) -> tuple[str, str | None]:
    if provider is None:
        return "local", NO_KEY_REASON
    # Degraded: files sent to the model came back unreviewed (an outage, the call cap, an
    # answer that stayed unusable or blocked) and only the local checks looked at them. Files
    # triage could not send at all (binary, too large) are listed as not reviewed instead.
    uncovered = [
        f.not_reviewed for f in files if f.not_reviewed is not None and f.status != "skipped"
    ]
    if uncovered:
        reason = uncovered[0].reason
        return f"{provider.name}+local", (
            f"{reason.removeprefix('not reviewed by the model: ')} "
            f"({len(uncovered)} file(s) not reviewed by the model)"
        )
    return provider.name, None


def _record_history(cache_dir: Path, verdict: Verdict, config: GatebotConfig, w: _Warnings) -> None:
    from bot.metrics.history import record_review  # prometheus-client: only when recording

    try:
        record_review(cache_dir, verdict, config.metrics)
    except (NotImplementedError, OSError, ValueError) as exc:  # ValueError: restored.StateError
        w.add(f"run history not recorded: {exc or type(exc).__name__}")


def run_review(
    repo: Path,
    base: str,
    head: str,
    config: GatebotConfig,
    cache_dir: Path,
    provider: Provider | None,
    *,
    env: Mapping[str, str] | None = None,
    config_label: str = "as given by the caller",
    workers: int | None = None,
    require_model: bool = False,
) -> ReviewRun:
    """Review base...head of the repository at `repo`. Raises UsageError for bad refs/repos.

    `config_label` says in the summary where `config` came from (bot.review.config_source).
    `workers`: processes for the free stages (default: 2 for a large change on 2+ cores).
    `require_model`: without a provider, the files a model would have reviewed are "not
    reviewed" (cause no_model) instead of passed by the local checks alone: the CLI sets it
    inside GitHub Actions, where a missing key means a fork PR or a missing secret.
    """
    started = time.perf_counter()
    review = config.review
    warnings = _Warnings()
    git_repo = open_repo(repo)
    rng = change_range(git_repo, base, head)
    files = _free_stages(repo, git_repo, rng, review, workers, keep_content=provider is not None)

    stats = _ModelStats()
    plan: ModelPlan | None = None
    if provider is not None and any(f.status != "skipped" for f in files):
        plan = _plan_models(provider, review, cache_dir, warnings)
        todo = _assign_keys(files, review, plan)
        with ReviewCache.open(cache_dir, review.cache_max_mb * 1024 * 1024) as cache:
            calibration = load_calibration(cache_dir)
            stats = _review_with_model(todo, provider, cache, review, warnings, calibration)
        warnings.extend(cache.warnings)  # already logged by the cache
    for w in fallback_warnings(plan, stats.fallbacks):
        warnings.add(w)
    if provider is None and require_model:
        for f in files:
            if f.status != "skipped" and f.not_reviewed is None:
                f.mark_not_reviewed("no_model", NO_MODEL_REASON)
    _cap_findings(files, review, warnings)

    results = [f.result() for f in files]
    decision = decide(results, review)
    tokens = [f.baseline_tokens for f in files if f.baseline_tokens is not None]
    naive = naive_baseline(tokens, stats.usage, review, plan)
    updates, cost_warnings = cost_updates(stats.spend, naive, plan, stats.fallbacks)
    updates["files_over_budget"] = sum(
        r.not_reviewed is not None and r.not_reviewed.cause == "budget" for r in results
    )
    for w in cost_warnings:
        warnings.add(w)
    label, degraded_reason = _provider_label(provider, files)
    if provider is None and env is not None and _has_key(env):
        degraded_reason = "the configured model provider is not available"
    metrics: Metrics = compute_metrics(
        results,
        usage=stats.usage,
        batches=stats.batches,
        files_reviewed_by_model=stats.files_answered,
        cost_usd=stats.spend.usd,
        baseline_api_calls=naive.calls,
        baseline_cost_usd=naive.usd or 0.0,
        duration_s=time.perf_counter() - started,
        # The automatic cap the provider enforced (bot/review/providers/transport.py).
        api_calls_cap=call_cap(stats.batches) if stats.batches else 0,
    ).model_copy(update=updates)
    verdict = Verdict(
        verdict=decision.verdict,
        reasons=list(decision.reasons),
        base_sha=rng.base_sha,
        head_sha=rng.head_sha,
        provider=label,
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        blocking_severity=review.blocking_severity,
        files=results,
        uncovered=[r.path for r in results if not r.covered],
        needs_human=[r.path for r in results if r.needs_human],
        metrics=metrics,
    )
    _record_history(cache_dir, verdict, config, warnings)
    summary = render_summary(verdict, decision.reasons, list(warnings), config_label)
    return ReviewRun(verdict, summary, decision.reasons, list(warnings))


def _has_key(env: Mapping[str, str]) -> bool:
    return first_set(env, GEMINI_KEYS) is not None


def write_outputs(run: ReviewRun, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "verdict.json").write_text(run.verdict.model_dump_json(indent=2) + "\n", "utf-8")
    (out_dir / "summary.md").write_text(run.summary_md, "utf-8")
    (out_dir / "metrics.json").write_text(
        run.verdict.metrics.model_dump_json(indent=2) + "\n", "utf-8"
    )
