"""The review gate, end to end: diff → triage → local reviewer → route → cache → batch →
provider → merge → cache store → verdict → metrics → summary.

Each stage lives in its own module; this one only composes them: the free stages
(bot/review/freestages.py), the model's stages (bot/review/modelpass.py), then the verdict,
the cost figures, the run history and the summary. The per-file state the stages share is
bot/review/runstate.py. Infrastructure failures (provider down, cache unusable, history
unwritable) never crash the run: they degrade it and say so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.env import GEMINI_KEYS, first_set
from bot.config.model import GatebotConfig
from bot.config.review import ReviewConfig
from bot.git.diff import change_range, open_repo
from bot.review.accounting import cost_updates, fallback_warnings, naive_baseline
from bot.review.budget import call_cap
from bot.review.cache import ReviewCache
from bot.review.freestages import free_stages
from bot.review.modelpass import ModelStats, assign_keys, plan_models, review_with_model
from bot.review.models import Metrics, Verdict
from bot.review.runstate import FileState, Warnings
from bot.review.summary import render_summary
from bot.review.tokens import load_calibration
from bot.review.types import ModelPlan, Provider
from bot.review.verdict import compute_metrics, decide, most_severe

NO_KEY_REASON = "no GEMINI_API_KEY or GOOGLE_API_KEY set"
NO_MODEL_REASON = (
    "not reviewed by a model: no GEMINI_API_KEY or GOOGLE_API_KEY in this run (fork PRs get no "
    "secrets); only the local checks ran"
)


@dataclass
class ReviewRun:
    verdict: Verdict
    summary_md: str
    reasons: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)


def _cap_findings(files: list[FileState], review: ReviewConfig, warnings: Warnings) -> None:
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


def _provider_label(provider: Provider | None, files: list[FileState]) -> tuple[str, str | None]:
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


def _record_history(cache_dir: Path, verdict: Verdict, config: GatebotConfig, w: Warnings) -> None:
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
    warnings = Warnings()
    git_repo = open_repo(repo)
    rng = change_range(git_repo, base, head)
    files = free_stages(repo, git_repo, rng, review, workers, keep_content=provider is not None)

    stats = ModelStats()
    plan: ModelPlan | None = None
    if provider is not None and any(f.status != "skipped" for f in files):
        plan = plan_models(provider, review, cache_dir, warnings)
        todo = assign_keys(files, review, plan)
        size = review.cache_max_mb * 1024 * 1024
        with ReviewCache.open(cache_dir, size, seal_key=provider.cache_seal) as cache:
            calibration = load_calibration(cache_dir)
            stats = review_with_model(todo, provider, cache, review, warnings, calibration)
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
