"""Fuzz the configuration loader: any input ends in a GatebotConfig or a ConfigError naming the key.

A config file is written by people (and, on a PR, by the PR's author), so it is untrusted
input: no other exception may escape, and the message must say where the problem is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.config import GatebotConfig, load_config, parse_config
from bot.config.load import printable
from bot.errors import ConfigError
from tests.security.strategies import fuzz_settings, model_documents, yaml_values

FUZZ = fuzz_settings(150)

# `review.prices.x[0]`, `deploy.targets..host` (an empty target name), `[3].x` (an int key).
_SEGMENT = re.compile(r"\[([^\]]*)\]|(?:^|\.)([^.\[]*)")


def _segments(path: str) -> list[str | int]:
    out: list[str | int] = []
    for m in _SEGMENT.finditer(path.replace(".[", "[")):
        if m.group(1) is not None:
            text = m.group(1)
            out.append(int(text) if text.lstrip("-").isdigit() else f"[{text}]")
        else:
            out.append(m.group(2))
    return out


def _step(node: Any, segment: str | int) -> tuple[bool, Any]:
    if isinstance(node, list) and isinstance(segment, int) and -len(node) <= segment < len(node):
        return True, node[segment]
    if isinstance(node, dict):
        for key, value in node.items():
            # Key names are shown with non-printable characters escaped (load.printable).
            shown = printable(str(key))
            # A blank or space-padded key is shown quoted: `[' ']`.
            quoted = f"[{printable(repr(str(key)))}]"
            if key == segment or shown == str(segment) or segment in (f"[{shown}]", quoted):
                return True, value
    return False, None


def key_paths(message: str) -> list[str]:
    """The key path of every problem line (`  review.budget_tokens: …`) of a ConfigError."""
    # Only "\n" separates lines here: keys may hold other Unicode line breaks (U+0085, U+2028).
    lines = message.split("\n")
    assert lines, "empty error message"
    paths = []
    for line in lines[1:]:
        if line.startswith("  ") and not line.startswith("   ") and ": " in line:
            paths.append(line[2:].split(": ", 1)[0])
    return paths


def assert_names_a_real_key(message: str, data: dict[str, Any]) -> None:
    paths = key_paths(message)
    if not paths:
        # Only the top-level shape error has no per-key lines, and it says so.
        assert "top level" in message, message
        return
    for path in paths:
        if path == "(top level)":
            continue
        segments = _segments(path)
        assert segments, f"no key path in {message!r}"
        node: Any = data
        # Every segment but the last must exist in the input (the last may be a missing key,
        # or pydantic's "[key]" marker for a bad mapping key).
        for i, segment in enumerate(segments):
            found, node = _step(node, segment)
            if not found:
                assert i >= len(segments) - 2 and (
                    i == len(segments) - 1 or segments[-1] == "[key]"
                ), f"key path {path!r} does not lead into the input; message:\n{message}"
                break


def check(data: Any) -> GatebotConfig | ConfigError:
    try:
        return parse_config(data, "fuzz.yml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yml"), f"the message does not name the file: {message!r}"
        if isinstance(data, dict):
            assert_names_a_real_key(message, data)
        return exc


@FUZZ
@given(model_documents(GatebotConfig))
def test_schema_shaped_documents_load_or_raise_config_error(data: Any) -> None:
    result = check(data)
    if isinstance(result, GatebotConfig):
        # Whatever was accepted is a usable value: it re-validates to the same thing.
        assert GatebotConfig.model_validate(result.model_dump()) == result


@pytest.mark.parametrize(
    "hook",
    [{}, "", {"run": ""}, {"run": "make", "extra": 1}, {"run": "make", "timeout_s": -1}],
    ids=["empty-mapping", "empty-string", "empty-run", "unknown-key", "bad-timeout"],
)
def test_a_lone_hook_command_names_the_key_written(hook: Any) -> None:
    # The shorthand `before_build: <one command>` must not report an index ([0]) the file does
    # not have: the fuzzer found `before_build: {}` reported as `before_build[0].run`.
    data = {"deploy": {"hooks": {"before_build": hook}}}
    result = check(data)
    assert isinstance(result, ConfigError)
    assert key_paths(str(result)) == ["deploy.hooks.before_build"], str(result)


@FUZZ
@given(yaml_values)
def test_arbitrary_values_load_or_raise_config_error(data: Any) -> None:
    check(data)


@FUZZ
@given(st.text(max_size=200) | yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)))
def test_arbitrary_files_load_or_raise_config_error(tmp_path_factory: Any, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "gatebot.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_error_names_the_nested_key_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"deploy": {"targets": {"inf": {"host": "h", "user": "u", "path": "rel"}}}})
    message = str(info.value)
    assert "deploy.targets.inf.path" in message
    assert "'rel'" in message
    with pytest.raises(ConfigError) as info:
        parse_config({"review": {"ignore": ["ok", 5]}, "typo": 1})
    message = str(info.value)
    assert "review.ignore[1]" in message
    assert "typo: unknown key" in message


@pytest.mark.parametrize("key", [" ", "", "\t", " review", "review "])
def test_a_blank_or_padded_key_is_named_visibly(key: str) -> None:
    # Found by the fuzzer: `{" ": None}` was reported as `   : unknown key`, a key nobody sees.
    result = check({key: None} if key.strip() != "review" else {"review": {key: 1}})
    assert isinstance(result, ConfigError)
    paths = key_paths(str(result))
    assert paths and all(repr(key) in p or printable(repr(key)) in p for p in paths), str(result)


def test_key_names_cannot_start_lines_in_the_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"review": {"x\n::error file=a.py::pwned\r\n::stop-commands::t": 1}})
    lines = str(info.value).splitlines()
    assert not [ln for ln in lines if ln.lstrip().startswith("::")], lines


def test_self_referencing_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gatebot.yml"
    path.write_text("review:\n  ignore: &loop [*loop]\n")
    with pytest.raises(ConfigError, match=r"review\.ignore"):
        load_config(path)


# ---- known bugs, found by the fuzzers above (kept out of their strategies until fixed) -------


@pytest.mark.parametrize(
    "pattern", ["a{99999999999}", "(" * 1200 + "a" + ")" * 1200], ids=["huge-repeat", "deep"]
)
def test_risk_regex_that_re_cannot_compile_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"review\.risk\.extra_content"):
        parse_config({"review": {"risk": {"extra_content": [pattern]}}})


@pytest.mark.parametrize(
    "text",
    [
        "review:\n  blocking_severity: 2020-02-30\n",
        "review:\n  budget_tokens: !!float abc\n",
        "review:\n  ignore: " + "[" * 3000 + "]" * 3000 + "\n",
    ],
    ids=["impossible-date", "bad-float-tag", "deep-nesting"],
)
def test_yaml_constructor_errors_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gatebot.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"gatebot\.yml"):
        load_config(path)
