"""A loopback Gemini API: `generateContent` and `countTokens` as google-genai calls them.

Reached by google-genai through GOOGLE_GEMINI_BASE_URL (the `gemini_server` fixture sets it and
a fake GEMINI_API_KEY). It answers schema-conforming JSON derived from the request: it parses
the numbered file blocks of the prompt, acknowledges each in `reviewed` and reports a finding
(naming the block's number) on every added line that carries a marker (`FIXME-SECURITY`,
`eval(`; the latter with a `suggestion`, its fix), none otherwise. It counts calls and tokens
(prompt, output, thinking and implicitly cached prefix tokens, like Gemini's implicit caching),
and fails on demand.

The model lineup is today's (LINEUP, as Google's models page lists it on 2026-12-04):
`models.list` (paged) and `models.get` serve it; a retired or unknown model is a 404 on every
method, as on the real API. `retire(model)` takes one away mid-run. Request parameters are
checked the way the API checks them: `thinkingLevel` only on Gemini 3 models and only a level
the model offers, `thinkingBudget` refused from Gemini 3.5 on, both at once refused (400).

    server.fail("429", times=2, retry_delay="0.05s")
    server.fail("omit_file", path="src/b.py")
    server.retire("gemini-3.8-flash")
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.review.prompt import Block, parse_blocks
from tests.fakes.loopback_http import LoopbackHTTPServer

FAKE_KEY = "fake-gemini-key-for-tests"
_TEXT = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
_ALL = ("minimal", "low", "medium", "high")
_LMH = ("low", "medium", "high")


@dataclass(frozen=True)
class FakeModel:
    name: str
    methods: tuple[str, ...] = _TEXT
    levels: tuple[str, ...] = _LMH  # thinking levels taken; () for budget-only (2.5) models
    budget_ok: bool = False  # thinkingBudget accepted (2.5; 3.0/3.1 for compatibility)
    default_level: str = "high"
    cache_min: int = 4096  # implicit caching minimum (Google's caching page)


# Google's Gemini API lineup on 2026-12-04 (models page, deprecations page): the text models,
# the auto-updated aliases, and a few non-text models that a resolver must not pick.
LINEUP: tuple[FakeModel, ...] = (
    FakeModel("gemini-3.8-flash"),
    FakeModel("gemini-3.7-flash"),
    FakeModel("gemini-3.6-flash", levels=_ALL),
    FakeModel("gemini-3.5-flash", levels=_ALL, default_level="medium"),
    FakeModel("gemini-3.5-flash-lite", levels=_ALL, default_level="minimal"),
    FakeModel("gemini-3.1-flash-lite", levels=_ALL, budget_ok=True, default_level="minimal"),
    FakeModel("gemini-3.1-pro-preview", budget_ok=True),
    FakeModel("gemini-3-flash-preview", levels=_ALL, budget_ok=True),
    FakeModel("gemini-flash-latest"),
    FakeModel("gemini-flash-lite-latest", levels=_ALL, default_level="minimal"),
    FakeModel("gemini-pro-latest"),
    FakeModel("gemini-2.5-flash-lite", levels=(), budget_ok=True, cache_min=2048),
    FakeModel("gemini-3.8-flash-tts", methods=("generateContent", "countTokens")),
    FakeModel("gemini-3.1-flash-image", methods=("generateContent", "countTokens")),
    FakeModel("gemini-embedding-2", methods=("embedContent", "countTokens")),
    FakeModel("imagen-4.0-generate-001", methods=("predict",)),
)
# Shut down: every method answers 404, as the real API does for a retired model.
RETIRED = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-3-pro-preview",
)
KNOWN_MODELS = tuple(m.name for m in LINEUP if "generateContent" in m.methods)
_MODEL_GET_RE = re.compile(r"^/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+)$")
_MODEL_LIST_RE = re.compile(r"^/(v1|v1beta|v1alpha)/models$")
# Thinking tokens a call spends (thoughtsTokenCount): per call, plus per file block.
THOUGHTS = {"minimal": (0, 0), "low": (200, 10), "medium": (800, 40), "high": (3200, 160)}
MARKERS = {"FIXME-SECURITY": ("high", "security"), "eval(": ("high", "security")}
FAULT_KINDS = (
    "429",
    "500",
    "503",
    "404",
    "auth",
    "slow",
    "truncated",
    "not_json",
    "empty",
    "omit_file",
    "malformed_file",
    "unknown_path",
    "unknown_line",
)
_PATH_RE = re.compile(r"^/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@")


@dataclass
class Fault:
    kind: str
    times: int = 1  # requests it applies to; -1: every matching request
    path: str | None = None  # only requests whose prompt asks about this file
    model: str | None = None
    retry_delay: str = "0.05s"
    delay_s: float = 2.0


@dataclass
class Call:
    model: str
    paths: list[str]
    status: int
    fault: str | None
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    generation_config: dict[str, Any] = field(default_factory=dict)
    system: str = ""


@dataclass
class Stats:
    calls: list[Call] = field(default_factory=list)
    count_tokens_calls: int = 0
    auth_rejections: int = 0
    list_calls: int = 0

    @property
    def generate_calls(self) -> int:
        return len(self.calls)

    @property
    def ok_calls(self) -> int:
        return sum(1 for c in self.calls if c.status == 200)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)

    @property
    def cached_tokens(self) -> int:
        return sum(c.cached_tokens for c in self.calls)

    @property
    def thoughts_tokens(self) -> int:
        return sum(c.thoughts_tokens for c in self.calls)

    def paths_asked(self) -> list[str]:
        return [p for c in self.calls if c.status == 200 for p in c.paths]


def count_tokens(text: str, chars_per_token: float = 3.6) -> int:
    # Not Gemini's tokenizer, but denser than the client's chars/4 rule on purpose: the client's
    # calibration has something real to learn.
    return math.ceil(len(text) / chars_per_token) if text else 0


def findings_for(body: str) -> list[dict[str, Any]]:
    """Findings for the added lines of one file block's diff that carry a marker."""
    out: list[dict[str, Any]] = []
    new_line: int | None = None
    for raw in body.splitlines():
        m = _HUNK_RE.match(raw)
        if m:
            new_line = int(m.group("new"))
            continue
        if new_line is None or not raw:
            continue
        origin, content = raw[0], raw[1:]
        if origin == "+":
            for marker, (severity, category) in MARKERS.items():
                # `ast.literal_eval(` is the fix for `eval(`, not another finding.
                if marker in content and "literal_eval(" not in content:
                    finding: dict[str, Any] = {
                        "line": new_line,
                        "end_line": new_line,
                        "severity": severity,
                        "category": category,
                        "message": f"{marker} on an added line",
                    }
                    if marker == "eval(":  # a fix a model would offer: a committable suggestion
                        finding["suggestion"] = content.replace("eval(", "ast.literal_eval(")
                    out.append(finding)
                    break
            new_line += 1
        elif origin == " ":
            new_line += 1
    return out


def summary_for(block: Block) -> str:
    """The walkthrough line a model writes for a block: what the change does, in brief."""
    added = sum(1 for ln in block.body.splitlines() if ln.startswith("+"))
    removed = sum(1 for ln in block.body.splitlines() if ln.startswith("-"))
    name = block.path.rsplit("/", 1)[-1]
    return f"Changes {name}: {added} line(s) added, {removed} removed"


def answer_for(blocks: list[Block], walkthrough: bool = False) -> dict[str, Any]:
    """The answer a faithful model gives, in the compact schema: every block's number in
    `reviewed`, findings naming their block by number, and (when the instructions ask for the
    walkthrough) one summary line per block."""
    answer: dict[str, Any] = {
        "reviewed": [b.number for b in blocks],
        "findings": [{"file": b.number, **f} for b in blocks for f in findings_for(b.body)],
    }
    if walkthrough:
        answer["summaries"] = [{"file": b.number, "text": summary_for(b)} for b in blocks]
    return answer


def _target_numbers(blocks: list[Block], fault: Fault | None) -> set[int]:
    """The blocks a per-file fault hits: those of `fault.path`, else the first block."""
    if fault is not None and fault.path is not None:
        return {b.number for b in blocks if b.path == fault.path}
    return {blocks[0].number}


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by binary search over slice comparisons (C speed)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def text_of(contents: Any) -> str:
    texts: list[str] = []
    if isinstance(contents, dict):
        contents = [contents]
    for content in contents or []:
        for part in (content or {}).get("parts") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "".join(texts)


class FakeGemini:
    def __init__(
        self,
        *,
        api_key: str = FAKE_KEY,
        min_cached_tokens: int | None = None,
        chars_per_token: float = 3.6,
        lineup: tuple[FakeModel, ...] = LINEUP,
    ) -> None:
        self.api_key = api_key
        self.lineup: dict[str, FakeModel] = {m.name: m for m in lineup}
        # every method answers 404 for a name not in here (retired or never existed)
        self.models: set[str] = set(self.lineup)
        self.min_cached_tokens = min_cached_tokens  # None: each model's own minimum
        self.chars_per_token = chars_per_token
        self.stats = Stats()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._seen_prefixes: dict[str, list[str]] = {}
        self._http = LoopbackHTTPServer()

    # -- control ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> FakeGemini:
        self._http.serve(_make_handler(self))
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.shutdown()

    def fail(self, kind: str, **kwargs: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(Fault(kind, **kwargs))

    def retire(self, model: str) -> None:
        """Shut a model down: from now on it is not listed and every call to it is a 404."""
        with self._lock:
            self.models.discard(model)

    def spec(self, model: str) -> FakeModel:
        return self.lineup.get(model) or FakeModel(model)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = Stats()

    # -- behaviour ----------------------------------------------------------------------

    def _take_fault(self, model: str, prompt: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.model is not None and f.model != model:
                    continue
                if f.path is not None and json.dumps(f.path) not in prompt:
                    continue
                if f.times > 0:
                    f.times -= 1
                    if f.times == 0:
                        self._faults.remove(f)
                return f
        return None

    def _cached_tokens(self, model: str, prompt: str) -> int:
        # Implicit caching: a prefix seen before on the same model is billed as cached, when it
        # is long enough (Gemini's minimum differs per model; 1024 tokens for 2.5 Flash).
        head = prompt[:65536]
        with self._lock:
            seen = self._seen_prefixes.setdefault(model, [])
            best = max((_common_prefix(earlier, head) for earlier in seen), default=0)
            seen.append(head)
            del seen[:-32]
        cached = count_tokens(prompt[:best], self.chars_per_token)
        minimum = self.min_cached_tokens
        if minimum is None:
            minimum = self.spec(model).cache_min
        return cached if cached >= minimum else 0

    def check_parameters(self, model: str, config: dict[str, Any]) -> str | None:
        """The 400 the real API gives for thinking settings this model does not take."""
        thinking = _field(config, "thinkingConfig") or {}
        level, budget = _field(thinking, "thinkingLevel"), _field(thinking, "thinkingBudget")
        spec = self.spec(model)
        if level is not None and budget is not None:
            return "thinking_budget and thinking_level cannot both be set."
        if level is not None:
            if not spec.levels:
                return f"Thinking level is not supported for {model}; use thinking_budget."
            if str(level).lower() not in spec.levels:
                return f"Thinking level {level} is not supported for {model}."
        if budget is not None and not spec.budget_ok:
            return f"thinking_budget is not supported for {model}; use thinking_level."
        return None

    def thoughts(self, model: str, config: dict[str, Any], blocks: int) -> int:
        thinking = _field(config, "thinkingConfig") or {}
        spec = self.spec(model)
        if spec.levels:
            level = str(_field(thinking, "thinkingLevel") or spec.default_level).lower()
            base, per = THOUGHTS.get(level, THOUGHTS["high"])
            return base + per * blocks
        budget = _field(thinking, "thinkingBudget")
        spent = 600 + 30 * blocks  # dynamic thinking
        return spent if budget is None or budget < 0 else min(int(budget), spent)

    def generate(self, model: str, request: dict[str, Any]) -> tuple[int, Any, Fault | None]:
        system = text_of(request.get("systemInstruction"))
        user = text_of(request.get("contents"))
        prompt = system + user
        blocks = parse_blocks(user)
        paths = [b.path for b in blocks]
        if model not in self.models:
            with self._lock:
                self.stats.calls.append(Call(model, paths, 404, "retired"))
            return 404, _not_found(model, "generateContent"), None
        bad = self.check_parameters(model, request.get("generationConfig") or {})
        if bad is not None:
            with self._lock:
                self.stats.calls.append(Call(model, paths, 400, "bad_parameter"))
            return 400, _status(400, bad, None), None
        fault = self._take_fault(model, prompt)
        call = Call(
            model=model,
            paths=paths,
            status=200,
            fault=fault.kind if fault else None,
            generation_config=request.get("generationConfig") or {},
            system=system,
        )
        with self._lock:
            self.stats.calls.append(call)

        kind = fault.kind if fault else None
        if kind in ("429", "500", "503", "404", "auth"):
            call.status, body = _error(kind, fault)
            return call.status, body, fault
        if kind == "slow":
            assert fault is not None
            self._stopping.wait(fault.delay_s)
        if kind == "not_json":
            return 200, b"this is not json", fault

        answer = answer_for(blocks, walkthrough="Also answer `summaries`" in system)
        numbers = {b.number for b in blocks}
        if kind == "omit_file" and blocks:
            # Left out of `reviewed`, and no finding names it either (that would count).
            target = _target_numbers(blocks, fault)
            answer["reviewed"] = [n for n in answer["reviewed"] if n not in target]
            answer["findings"] = [f for f in answer["findings"] if f["file"] not in target]
        if kind == "malformed_file" and blocks:
            for n in sorted(_target_numbers(blocks, fault)):
                answer["findings"].append(
                    {"file": n, "line": "one", "severity": "urgent", "message": 3}
                )
        if kind == "unknown_path":
            # A finding (and an acknowledgement) naming a block number the batch does not have.
            stray = max(numbers, default=0) + 1
            answer["reviewed"].append(stray)
            answer["findings"].append(
                {
                    "file": stray,
                    "line": 1,
                    "end_line": 1,
                    "severity": "critical",
                    "category": "security",
                    "message": "a finding on a file nobody asked about",
                }
            )
        if kind == "unknown_line" and blocks:
            answer["findings"].append(
                {
                    "file": blocks[0].number,
                    "line": 99999,
                    "end_line": 99999,
                    "severity": "medium",
                    "category": "bug",
                    "message": "a finding on a line outside the diff",
                }
            )
        text = json.dumps(answer)
        if kind == "truncated":
            text = text[: max(len(text) // 2, 1)]
        if kind == "empty":
            text = ""

        call.prompt_tokens = count_tokens(prompt, self.chars_per_token)
        call.cached_tokens = self._cached_tokens(model, prompt)
        candidates = count_tokens(text, self.chars_per_token)
        call.thoughts_tokens = self.thoughts(model, call.generation_config, len(blocks))
        call.output_tokens = candidates + call.thoughts_tokens
        usage: dict[str, int] = {
            "promptTokenCount": call.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": call.prompt_tokens + call.output_tokens,
        }
        if call.thoughts_tokens:
            usage["thoughtsTokenCount"] = call.thoughts_tokens
        if call.cached_tokens:
            usage["cachedContentTokenCount"] = call.cached_tokens
        answer = {
            "candidates": [
                {
                    "content": {"parts": [{"text": text}], "role": "model"},
                    "finishReason": "MAX_TOKENS" if kind == "truncated" else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
        }
        return 200, answer, fault

    def list_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """One page of models.list (pageSize default 50, at most 1000; pageToken an offset)."""
        try:
            size = min(max(int((query.get("pageSize") or ["50"])[0]), 1), 1000)
            start = int((query.get("pageToken") or ["0"])[0] or 0)
        except ValueError:
            size, start = 50, 0
        with self._lock:
            self.stats.list_calls += 1
            names = [n for n in self.lineup if n in self.models]
        page = names[start : start + size]
        out: dict[str, Any] = {"models": [_model_record(self.spec(n)) for n in page]}
        if start + size < len(names):
            out["nextPageToken"] = str(start + size)
        return out

    def count(self, request: dict[str, Any]) -> dict[str, Any]:
        inner = request.get("generateContentRequest") or request
        text = text_of(inner.get("contents")) + text_of(inner.get("systemInstruction"))
        with self._lock:
            self.stats.count_tokens_calls += 1
        return {"totalTokens": count_tokens(text, self.chars_per_token)}


def _field(obj: dict[str, Any], camel: str) -> Any:
    """A request field by its JSON name or its proto name (the API accepts both spellings;
    google-genai sends `thinking_level` inside `thinkingConfig`)."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return obj.get(camel, obj.get(snake)) if isinstance(obj, dict) else None


def _not_found(model: str, method: str) -> dict[str, Any]:
    msg = (
        f"models/{model} is not found for API version v1beta, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods."
    )
    return _status(404, msg, None, "NOT_FOUND")


def _model_record(m: FakeModel) -> dict[str, Any]:
    return {
        "name": f"models/{m.name}",
        "version": "001",
        "displayName": m.name,
        "description": f"{m.name} (loopback fake)",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": list(m.methods),
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
        "thinking": True,
    }


def _error(kind: str, fault: Fault | None) -> tuple[int, dict[str, Any]]:
    if kind == "429":
        delay = fault.retry_delay if fault else "1s"
        return 429, {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
                ],
            }
        }
    if kind == "auth":
        return 400, _status(
            400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"
        )
    if kind == "404":
        return 404, _status(404, "models/x is not found for API version v1", None, "NOT_FOUND")
    code = int(kind)
    status = "INTERNAL" if code == 500 else "UNAVAILABLE"
    return code, _status(code, "The service is currently unavailable.", None, status)


def _status(code: int, message: str, reason: str | None, status: str = "INVALID_ARGUMENT") -> Any:
    details = (
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
        if reason
        else []
    )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _make_handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout) before a slow answer came: that is the point.
                self.close_connection = True

        def _authorised(self) -> bool:
            if self.headers.get("x-goog-api-key") == fake.api_key:
                return True
            with fake._lock:
                fake.stats.auth_rejections += 1
            self._send(
                400,
                _status(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"),
            )
            return False

        def do_GET(self) -> None:
            # models.list (paged) and models.get, as google-genai calls them.
            path, _, query = self.path.partition("?")
            if _MODEL_LIST_RE.match(path):
                if self._authorised():
                    self._send(200, fake.list_page(parse_qs(query)))
                return
            m = _MODEL_GET_RE.match(path)
            if not m:
                self._send(404, _status(404, f"no such method {self.path}", None, "NOT_FOUND"))
                return
            if not self._authorised():
                return
            model = m.group("model")
            if model not in fake.models:
                self._send(404, _not_found(model, "get"))
                return
            self._send(200, _model_record(fake.spec(model)))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            m = _PATH_RE.match(self.path.split("?")[0])
            if not m:
                self._send(404, _status(404, f"no such method {self.path}", None, "NOT_FOUND"))
                return
            if not self._authorised():
                return
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, _status(400, "Invalid JSON payload received.", None))
                return
            if m.group("method") == "generateContent":  # records even a 404 as a call
                status, body, _ = fake.generate(m.group("model"), request)
                self._send(status, body)
            elif m.group("model") not in fake.models:
                self._send(404, _not_found(m.group("model"), m.group("method")))
            elif m.group("method") == "countTokens":
                self._send(200, fake.count(request))
            elif m.group("method") == "generateContent":
                status, body, _ = fake.generate(m.group("model"), request)
                self._send(status, body)
            else:
                self._send(
                    404, _status(404, f"method {m.group('method')} not faked", None, "NOT_FOUND")
                )

    return Handler


@pytest.fixture
def gemini_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    """A running fake Gemini; google-genai reaches it through GOOGLE_GEMINI_BASE_URL."""
    server = FakeGemini().start()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    monkeypatch.setenv("GEMINI_API_KEY", server.api_key)
    try:
        yield server
    finally:
        server.stop()
