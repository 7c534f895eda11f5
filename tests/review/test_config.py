"""The review section of the configuration, the published JSON Schema and the key reference."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from bot.config import parse_config
from bot.config.schema import (
    CONFIG_DOC_PATH,
    SCHEMA_PATH,
    main,
    render_config_doc,
    render_schema,
)
from bot.errors import ConfigError

DESIGN_EXAMPLE = """
review:
  blocking_severity: high
  ignore: ["docs/**"]
  protected:
    paths: [".github/workflows/**", "action.yml", "action/**", ".github/gatebot.yml"]
    conclusion: neutral
  models: {lite: gemini-2.5-flash-lite, standard: gemini-2.5-flash, deep: gemini-2.5-pro}
  budget_tokens: 60000
"""


def test_committed_schema_and_reference_are_current() -> None:
    assert SCHEMA_PATH.read_text("utf-8") == render_schema(), "run: python -m bot.config.schema"
    current = CONFIG_DOC_PATH.read_text("utf-8")
    assert current == render_config_doc(current), "run: python -m bot.config.schema"
    assert main(["--check"]) == 0


def test_design_example_is_valid_for_loader_and_schema() -> None:
    data = yaml.safe_load(DESIGN_EXAMPLE)
    cfg = parse_config(data)
    assert cfg.review.ignore == ["docs/**"] and cfg.review.budget_tokens == 60000
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text("utf-8")))


def test_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    bad = {"review": {"blocking_severty": "high"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(ConfigError, match=r"review\.blocking_severty: unknown key"):
        parse_config(bad)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"review": {"blocking_severity": "severe"}}, "review.blocking_severity"),
        ({"review": {"protected": {"conclusion": "red"}}}, "review.protected.conclusion"),
        ({"review": {"local": {"secrets": "maybe"}}}, "review.local.secrets"),
        ({"review": {"cache_max_mb": 0}}, "review.cache_max_mb"),
        ({"review": {"context_lines": 500}}, "review.context_lines"),
    ],
)
def test_bad_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(data)


def test_reference_lists_every_review_key() -> None:
    text = CONFIG_DOC_PATH.read_text("utf-8")
    for key in (
        "review.blocking_severity",
        "review.ignore",
        "review.protected.paths",
        "review.protected.conclusion",
        "review.models.deep",
        "review.budget_tokens",
        "review.context_lines",
        "review.cache_max_mb",
        "review.local.secrets",
    ):
        assert f"`{key}`" in text, key
