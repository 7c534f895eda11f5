"""GeminiProvider against the loopback Gemini server: every failure mode over a real socket."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from bot.config.review import ReviewConfig
from bot.errors import ProviderError
from bot.review.batch import make_items, plan
from bot.review.cost import today_utc
from bot.review.providers import GeminiProvider, select_provider
from bot.review.providers.gemini import parse_answer
from bot.review.providers.resolve import plan as resolve_plan
from bot.review.route import route, tiers_of
from bot.review.types import Batch, BatchOutcome, FileChange, ModelPlan, ReviewItem
from tests.fakes.gemini import KNOWN_MODELS, FakeGemini
from tests.provider.helpers import added_file, edited_file

ONE_MODEL = {"lite": "flash", "standard": "flash", "deep": "flash"}


def fast_config(models: dict[str, str] | None = None, **gemini: Any) -> ReviewConfig:
    """Quick retries; one family for every tier (one call for `changes()`) unless given."""
    settings = {
        "timeout_s": 2,
        "attempts": 3,
        "initial_delay_s": 0.01,
        "max_delay_s": 0.05,
        "jitter_s": 0.01,
        "max_retry_delay_s": 2,
        **gemini,
    }
    return ReviewConfig.model_validate({"gemini": settings, "models": models or ONE_MODEL})


def changes(n: int = 6) -> list[FileChange]:
    out = [
        added_file(f"src/mod{i}.py", [f"value_{i}_{j} = compute({j})" for j in range(30)])
        for i in range(n)
    ]
    out[1] = edited_file("src/mod1.py", ["a = 1"], ["a = 2", "b = eval(text)  # FIXME-SECURITY"])
    return out


def live_plan(cfg: ReviewConfig) -> ModelPlan:
    """The tiers resolved against the fake's lineup, as a run's first step does."""
    return resolve_plan(tiers_of(cfg), cfg.fallback, KNOWN_MODELS, today=today_utc())


def batches_for(cfg: ReviewConfig, chs: list[FileChange] | None = None) -> list[Batch]:
    items = []
    for ch in chs or changes():
        tier, model = route(ch, None, cfg, live_plan(cfg))
        items += make_items(ch, tier, model, f"key:{ch.path}", cfg)
    return plan(items, cfg)


def provider(server: FakeGemini, cfg: ReviewConfig) -> GeminiProvider:
    p = select_provider(
        {"GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.url}, cfg
    )
    assert isinstance(p, GeminiProvider)
    return p


def all_keys(batches: list[Batch]) -> set[str]:
    return {it.cache_key for b in batches for it in b.items}


def answered(outcomes: list[BatchOutcome]) -> set[str]:
    return {k for o in outcomes for k in o.findings}


def failed(outcomes: list[BatchOutcome]) -> dict[str, str]:
    return {k: v for o in outcomes for k, v in o.failed.items()}


def calls(outcomes: list[BatchOutcome]) -> int:
    return sum(u.calls for o in outcomes for u in o.usage_by_model.values())


def test_select_provider_needs_a_key() -> None:
    assert select_provider({}, ReviewConfig()) is None
    p = select_provider({"GOOGLE_API_KEY": "k"}, ReviewConfig())
    assert isinstance(p, GeminiProvider)
    assert "k" not in repr(p)


def test_a_review_maps_findings_and_accounts_usage(gemini_server: FakeGemini) -> None:
    cfg = fast_config()
    batches = batches_for(cfg)
    p = provider(gemini_server, cfg)
    outcomes = p.review(batches)
    assert answered(outcomes) == all_keys(batches)
    assert failed(outcomes) == {}
    (finding,) = [f for o in outcomes for fs in o.findings.values() for f in fs]
    assert (finding.path, finding.line, finding.severity) == ("src/mod1.py", 2, "high")
    assert finding.source == "model" and finding.in_diff
    # usage is what the server reported, per model
    assert calls(outcomes) == gemini_server.stats.generate_calls == len(batches)
    prompt = sum(u.input_tokens for o in outcomes for u in o.usage_by_model.values())
    assert prompt == gemini_server.stats.prompt_tokens
    # the fake counts ~3.6 chars per token: calibration learned that our chars/4 is low
    assert p.calibration.value.samples == len(batches)
    assert 1.0 < p.calibration.value.factor < 1.3


def test_the_request_asks_for_structured_output_with_gemini_3_parameters(
    gemini_server: FakeGemini,
) -> None:
    # a thinking budget is configured too: a Gemini 3.5+ model must never get it (the API
    # refuses it there, and refuses a budget next to a level everywhere)
    cfg = fast_config(thinking_budget=0)
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    assert failed(outcomes) == {}
    call = gemini_server.stats.calls[0]
    assert call.model == "gemini-3.8-flash" and call.status == 200
    gen = call.generation_config
    # Google advises leaving temperature at its default on Gemini 3: none is sent
    assert "temperature" not in gen
    # google-genai sends the proto field-name form; the API accepts both spellings
    assert gen["thinkingConfig"] in ({"thinkingLevel": "LOW"}, {"thinking_level": "LOW"})
    assert gen["responseMimeType"] == "application/json"
    schema = gen["responseSchema"]
    # the compact answer: block numbers, no per-file entries; the SDK sends the field order
    assert schema["required"] == ["reviewed", "findings"]
    # `summaries` (the walkthrough) is sent last and is not required
    assert schema["property_ordering"] == ["reviewed", "findings", "summaries"]
    assert schema["properties"]["reviewed"]["items"]["type"] == "INTEGER"
    finding = schema["properties"]["findings"]["items"]
    assert finding["property_ordering"][0] == "file" and "path" not in finding["properties"]
    assert finding["properties"]["file"]["type"] == "INTEGER"
    assert set(finding["properties"]["severity"]["enum"]) == {
        "info",
        "low",
        "medium",
        "high",
        "critical",
    }
    assert call.system.startswith("You are a strict code reviewer")


def test_a_2_5_model_gets_its_budget_and_temperature_0(gemini_server: FakeGemini) -> None:
    lite = {"lite": "gemini-2.5-flash-lite"} | {"standard": "flash-lite", "deep": "flash-lite"}
    cfg = fast_config(models=lite, thinking_budget=0)
    chs = [added_file("docs/a.md", ["one line"])]
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg, chs))
    assert failed(outcomes) == {}
    (call,) = gemini_server.stats.calls
    assert call.model == "gemini-2.5-flash-lite"
    gen = call.generation_config
    assert gen["temperature"] == 0
    assert gen["thinkingConfig"] in ({"thinkingBudget": 0}, {"thinking_budget": 0})


def test_implicit_prefix_caching_is_accounted(gemini_server: FakeGemini) -> None:
    gemini_server.min_cached_tokens = 100  # the fake's stand-in for Gemini's minimum
    cfg = fast_config()
    p = provider(gemini_server, cfg)
    one = p.review(batches_for(cfg))
    two = p.review(batches_for(cfg, [added_file("src/auth/other.py", ["z = 1"] * 30)]))
    assert sum(u.cached_tokens for o in one for u in o.usage_by_model.values()) == 0
    cached = sum(u.cached_tokens for o in two for u in o.usage_by_model.values())
    assert cached >= 100  # the stable instructions came first and were seen before


def test_429_waits_for_the_servers_retry_delay(gemini_server: FakeGemini) -> None:
    gemini_server.fail("429", times=1, retry_delay="0.4s")
    cfg = fast_config()
    started = time.monotonic()
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    assert time.monotonic() - started >= 0.4
    assert failed(outcomes) == {}
    assert [c.status for c in gemini_server.stats.calls] == [429, 200]


def test_a_quota_that_resets_much_later_is_not_waited_for(gemini_server: FakeGemini) -> None:
    gemini_server.fail("429", times=-1, retry_delay="3600s")
    cfg = fast_config()
    batches = batches_for(cfg)
    started = time.monotonic()
    outcomes = provider(gemini_server, cfg).review(batches)
    assert time.monotonic() - started < 2
    assert gemini_server.stats.generate_calls == 1
    assert set(failed(outcomes)) == all_keys(batches)
    assert all("429" in why for why in failed(outcomes).values())


@pytest.mark.parametrize("kind", ["500", "503"])
def test_a_transient_server_error_is_retried_by_the_sdk(
    gemini_server: FakeGemini, kind: str
) -> None:
    gemini_server.fail(kind, times=2)
    cfg = fast_config()
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    assert failed(outcomes) == {}
    assert [c.status for c in gemini_server.stats.calls] == [int(kind), int(kind), 200]


def test_a_provider_that_stays_down_leaves_the_files_uncovered(gemini_server: FakeGemini) -> None:
    gemini_server.fail("503", times=-1)
    cfg = fast_config(concurrency=1)
    chs = [*changes(), added_file("src/auth/login.py", ["ok = 1"])]  # a second (deep) call
    batches = batches_for(cfg.model_copy(update={"merge_tiers": False}), chs)
    assert len(batches) == 2
    p = provider(gemini_server, cfg)
    outcomes = p.review(batches)
    assert set(failed(outcomes)) == all_keys(batches)
    assert all("provider unavailable" in why for why in failed(outcomes).values())
    # the second call was not even tried once the first one exhausted its retries
    assert gemini_server.stats.generate_calls == cfg.gemini.attempts
    assert p.down_reason is not None and "503" in p.down_reason


def test_a_slow_answer_past_the_timeout_is_given_up(gemini_server: FakeGemini) -> None:
    gemini_server.fail("slow", times=-1, delay_s=5)
    cfg = fast_config(timeout_s=0.3, attempts=2)
    batches = batches_for(cfg)
    started = time.monotonic()
    outcomes = provider(gemini_server, cfg).review(batches)
    assert time.monotonic() - started < 3
    assert set(failed(outcomes)) == all_keys(batches)
    assert all("timed out" in why for why in failed(outcomes).values())


def test_a_slow_answer_once_is_retried(gemini_server: FakeGemini) -> None:
    gemini_server.fail("slow", times=1, delay_s=5)
    cfg = fast_config(timeout_s=0.3)
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    assert failed(outcomes) == {}
    assert gemini_server.stats.generate_calls == 2


@pytest.mark.parametrize("kind", ["truncated", "empty", "not_json"])
def test_an_unusable_answer_is_asked_again_in_smaller_parts(
    gemini_server: FakeGemini, kind: str
) -> None:
    gemini_server.fail(kind, times=1)
    cfg = fast_config()
    batches = batches_for(cfg)
    (batch,) = batches
    outcomes = provider(gemini_server, cfg).review(batches)
    assert answered(outcomes) == all_keys(batches)
    assert failed(outcomes) == {}
    # one bad call, then the batch in two halves
    asked = [c.paths for c in gemini_server.stats.calls]
    assert len(asked) == 3
    assert sorted(asked[1] + asked[2]) == sorted(it.path for it in batch.items)
    # the finding survived the detour
    assert any(f.line == 2 for o in outcomes for fs in o.findings.values() for f in fs)


@pytest.mark.parametrize("kind", ["omit_file", "malformed_file"])
def test_a_file_missing_or_malformed_is_retried_alone(gemini_server: FakeGemini, kind: str) -> None:
    gemini_server.fail(kind, times=1, path="src/mod1.py")
    cfg = fast_config()
    batches = batches_for(cfg)
    outcomes = provider(gemini_server, cfg).review(batches)
    assert answered(outcomes) == all_keys(batches)
    assert [c.paths for c in gemini_server.stats.calls][1] == ["src/mod1.py"]
    assert gemini_server.stats.generate_calls == 2


def test_a_file_that_never_comes_back_is_failed_after_bounded_retries(
    gemini_server: FakeGemini,
) -> None:
    gemini_server.fail("omit_file", times=-1, path="src/mod3.py")
    cfg = fast_config(item_retries=2)
    batches = batches_for(cfg)
    outcomes = provider(gemini_server, cfg).review(batches)
    assert failed(outcomes) == {"key:src/mod3.py": "missing from the answer"}
    assert answered(outcomes) == all_keys(batches) - {"key:src/mod3.py"}
    assert gemini_server.stats.generate_calls == 1 + 2


def test_answers_about_files_not_asked_are_ignored(gemini_server: FakeGemini) -> None:
    gemini_server.fail("unknown_path", times=1)
    cfg = fast_config()
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    paths = {f.path for o in outcomes for fs in o.findings.values() for f in fs}
    assert paths == {"src/mod1.py"}


def test_a_finding_outside_the_diff_is_kept_but_not_annotatable(
    gemini_server: FakeGemini,
) -> None:
    gemini_server.fail("unknown_line", times=1)
    cfg = fast_config()
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg))
    far = [f for o in outcomes for fs in o.findings.values() for f in fs if f.line == 99999]
    assert len(far) == 1 and far[0].in_diff is False


def test_an_unknown_model_fails_its_files_without_taking_the_provider_down(
    gemini_server: FakeGemini,
) -> None:
    gemini_server.fail("404", times=-1, model="gemini-3.1-pro-preview")
    gemini_server.fail("404", times=-1, model="gemini-pro-latest")
    cfg = fast_config(models={"lite": "flash", "standard": "flash", "deep": "pro"})
    cfg = cfg.model_copy(update={"merge_tiers": False})
    chs = [*changes(), added_file("src/auth/login.py", ["ok = 1"])]
    batches = batches_for(cfg, chs)
    p = provider(gemini_server, cfg)  # no plan: nothing to fall back to
    outcomes = p.review(batches)
    deep = {"key:src/auth/login.py", "key:src/mod1.py"}  # mod1 adds an eval(): deep too
    assert set(failed(outcomes)) == deep
    assert "404" in failed(outcomes)["key:src/auth/login.py"]
    (moved,) = [f for o in outcomes for f in o.fallbacks]
    assert (moved.from_model, moved.to_model) == ("gemini-3.1-pro-preview", None)
    assert p.down_reason is None
    assert answered(outcomes) == all_keys(batches) - deep


def test_a_rejected_key_raises_without_leaking_it(
    gemini_server: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = fast_config()
    secret = "AIzaSy-definitely-wrong-key-0123456789"
    p = select_provider(
        {"GEMINI_API_KEY": secret, "GOOGLE_GEMINI_BASE_URL": gemini_server.url}, cfg
    )
    assert p is not None
    with pytest.raises(ProviderError) as info:
        p.review(batches_for(cfg))
    assert "API key" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert gemini_server.stats.auth_rejections == 1  # a bad key is not retried


def test_calls_run_concurrently_within_the_bound(gemini_server: FakeGemini) -> None:
    gemini_server.fail("slow", times=-1, delay_s=0.3)
    cfg = fast_config(concurrency=4).model_copy(update={"max_files_per_call": 1})
    batches = batches_for(cfg)
    assert len(batches) == 6
    started = time.monotonic()
    outcomes = provider(gemini_server, cfg).review(batches)
    elapsed = time.monotonic() - started
    assert failed(outcomes) == {}
    assert 0.55 <= elapsed < 6 * 0.3  # two waves of at most 4, not six in a row


def test_count_tokens_speaks_the_wire(gemini_server: FakeGemini) -> None:
    p = provider(gemini_server, fast_config())
    assert p.count_tokens("gemini-3.8-flash", "x" * 360) == 100
    assert gemini_server.stats.count_tokens_calls == 1


def test_the_sdk_reads_the_base_url_from_the_environment(gemini_server: FakeGemini) -> None:
    # No base_url passed: google-genai itself honours GOOGLE_GEMINI_BASE_URL (set by the fixture).
    p = GeminiProvider(gemini_server.api_key, fast_config())
    outcomes = p.review(batches_for(fast_config()))
    assert failed(outcomes) == {}
    assert gemini_server.stats.generate_calls == 1


def test_common_prefix_of_the_fake() -> None:
    from tests.fakes.gemini import _common_prefix

    assert _common_prefix("abcdef", "abcxyz") == 3
    assert _common_prefix("", "abc") == 0
    assert _common_prefix("same", "same") == 4


def _finding(file: Any, line: Any = 1, **extra: Any) -> dict[str, Any]:
    return {
        "file": file,
        "line": line,
        "end_line": line,
        "severity": "high",
        "category": "bug",
        "message": "m",
        **extra,
    }


PARSE_ITEMS = [
    ReviewItem("a.py", "", frozenset({3, 4}), "lite", "m", "ka", 1),
    ReviewItem("b.py", "", frozenset({1}), "lite", "m", "kb#0", 1, part=0, parts=2),
    ReviewItem("b.py", "", frozenset({50}), "lite", "m", "kb#1", 1, part=1, parts=2),
]


def test_parse_answer_maps_entries_and_rejects_bad_ones() -> None:
    answer = {
        "reviewed": [1, 3],
        "findings": [
            # a span a model could make huge: still a cheap, correct in_diff
            {
                "file": 1,
                "line": 1,
                "end_line": 10**12,
                "severity": "HIGH",
                "category": "Bug X",
                "message": " m ",
            },
            {
                "file": 1,
                "line": 0,
                "end_line": None,
                "severity": "low",
                "category": "",
                "message": "",
            },
            {"file": 3, "line": "x", "severity": "urgent"},
            {
                "file": 4,
                "line": 1,
                "end_line": 1,
                "severity": "high",
                "category": "",
                "message": "m",
            },
        ],
    }
    result = parse_answer(json.dumps(answer), PARSE_ITEMS)
    first, whole_file = result.ok["ka"]
    assert (first.line, first.end_line, first.severity, first.category, first.in_diff) == (
        1,
        10**12,
        "high",
        "bug-x",
        True,
    )
    assert (whole_file.line, whole_file.in_diff, whole_file.category) == (None, False, "general")
    assert result.bad == {
        "kb#1": "malformed answer for the file (5 errors)",  # in `reviewed`, but malformed
        "kb#0": "missing from the answer",
    }
    assert not result.unparseable
    assert parse_answer("{", PARSE_ITEMS).unparseable


def test_a_clean_file_is_only_its_number() -> None:
    result = parse_answer('{"reviewed":[1,2,3],"findings":[]}', PARSE_ITEMS)
    assert result.ok == {"ka": [], "kb#0": [], "kb#1": []} and not result.bad


def test_a_block_left_out_of_reviewed_is_missing_unless_a_finding_names_it() -> None:
    answer = {"reviewed": [1], "findings": [_finding(3, 50)]}
    result = parse_answer(json.dumps(answer), PARSE_ITEMS)
    assert result.ok["ka"] == []
    (finding,) = result.ok["kb#1"]  # a finding says the block was reviewed
    assert (finding.path, finding.line, finding.in_diff) == ("b.py", 50, True)
    assert result.bad == {"kb#0": "missing from the answer"}


@pytest.mark.parametrize("stray", [0, -1, 4, 10**6, True, False, "1", 1.0, None, [1], {"n": 1}])
def test_a_number_that_names_no_block_is_ignored(stray: Any) -> None:
    answer = {"reviewed": [stray, 2], "findings": [_finding(stray), _finding(2, 1)]}
    result = parse_answer(json.dumps(answer), PARSE_ITEMS)
    # never attached to any file, and it does not count as reviewing block 1 (JSON true is not 1)
    assert [(f.path, f.line) for fs in result.ok.values() for f in fs] == [("b.py", 1)]
    assert set(result.ok) == {"kb#0"}
    assert set(result.bad.values()) == {"missing from the answer"}


def test_duplicate_numbers_are_harmless_and_findings_stay_apart() -> None:
    answer = {
        "reviewed": [2, 2, 1, 3, 3, 3],
        "findings": [_finding(3, 50), _finding(3, 50), _finding(1, 3), _finding("x")],
    }
    result = parse_answer(json.dumps(answer), PARSE_ITEMS)
    assert not result.bad
    assert [f.line for f in result.ok["kb#1"]] == [50, 50]
    assert [f.line for f in result.ok["ka"]] == [3] and result.ok["kb#0"] == []


@pytest.mark.parametrize(
    "answer",
    [
        {"findings": []},
        {"reviewed": [1, 2, 3]},
        {"reviewed": 3, "findings": []},
        {"reviewed": [1, 2, 3], "findings": {"file": 1}},
        {"files": [{"path": "a.py", "part": 1, "findings": []}]},  # the old schema
        [1, 2, 3],
    ],
)
def test_an_answer_of_the_wrong_shape_is_unparseable(answer: Any) -> None:
    result = parse_answer(json.dumps(answer), PARSE_ITEMS)
    assert result.unparseable and not result.ok
    assert set(result.bad) == {"ka", "kb#0", "kb#1"}


def test_a_clean_file_costs_about_a_token_of_output(gemini_server: FakeGemini) -> None:
    cfg = fast_config().model_copy(update={"walkthrough": False})
    chs = [added_file(f"src/clean{i}.py", [f"v = {i}"] * 20) for i in range(40)]
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg, chs))
    assert failed(outcomes) == {} and len(answered(outcomes)) == 40
    assert gemini_server.stats.generate_calls == 1
    # the answer itself (thinking apart): the old schema echoed path, part and an empty list,
    # ~14 tokens per clean file
    out = gemini_server.stats.output_tokens - gemini_server.stats.thoughts_tokens
    assert out <= 10 + 1.5 * 40, out


def test_the_walkthrough_rides_in_the_same_call_for_a_line_per_file(
    gemini_server: FakeGemini,
) -> None:
    cfg = fast_config()  # review.walkthrough defaults to on
    chs = [added_file(f"src/clean{i}.py", [f"v = {i}"] * 20) for i in range(40)]
    outcomes = provider(gemini_server, cfg).review(batches_for(cfg, chs))
    assert failed(outcomes) == {} and gemini_server.stats.generate_calls == 1
    lines = {k: v for o in outcomes for k, v in o.summaries.items()}
    assert len(lines) == 40 and all(v.startswith("Changes clean") for v in lines.values())
    out = gemini_server.stats.output_tokens - gemini_server.stats.thoughts_tokens
    assert out <= 10 + 25 * 40, out  # one short line per file: tokens, not a second call
    # thinking is reported apart and billed as output, at the configured low level
    outcome_usage = [u for o in outcomes for u in o.usage_by_model.values()]
    assert sum(u.thoughts_tokens for u in outcome_usage) == gemini_server.stats.thoughts_tokens > 0
    assert sum(u.output_tokens for u in outcome_usage) == gemini_server.stats.output_tokens
