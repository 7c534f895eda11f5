"""Hypothesis strategies for bad input: YAML-ish values, and documents shaped like our models.

`yaml_values` is anything `yaml.safe_load` can hand us (including dates, bytes and NaN).
`model_documents(Model)` walks a pydantic model's fields so the fuzzer reaches nested sections
with real key names, mixing plausible values, wrong types and unknown keys.
"""

from __future__ import annotations

import datetime as dt
import os
import types
import typing
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel


def fuzz_settings(max_examples: int) -> settings:
    """In CI the examples are derandomized (same inputs every run: no flaky red builds);
    locally every run explores new inputs. Nothing is stored in the repository."""
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
        derandomize=in_ci,
    )


# Keys a person could type; no '.', '[', ']' or ':' so an error's key path can be walked back.
plain_keys = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters=".[]:\r\n", min_codepoint=32
    ),
    min_size=1,
    max_size=12,
)

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "~", "0", "-1", "1e999", "null", "yes", "../../etc", "/", "a{2,1}"]),
    st.binary(max_size=8),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
)

yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(plain_keys, st.integers(), st.booleans()), children, max_size=4),
    ),
    max_leaves=12,
)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _plausible(annotation: Any, depth: int) -> st.SearchStrategy[Any]:
    """Values of roughly the right shape for a field, often at or beyond its bounds."""
    ann = _unwrap_optional(annotation)
    origin = typing.get_origin(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return model_documents(ann, depth + 1)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(ann))
    if origin is dict:
        _, value_type = typing.get_args(ann)
        names = st.one_of(plain_keys, st.sampled_from(["inf", "prod", "a b", "-x", ""]))
        return st.dictionaries(names, _plausible(value_type, depth), max_size=2)
    if origin is list:
        (item_type,) = typing.get_args(ann)
        return st.lists(_plausible(item_type, depth), max_size=3)
    if ann is bool:
        return st.booleans()
    if ann is int:
        return st.integers(min_value=-5, max_value=70000) | st.sampled_from([0, 1, 2, 2**63])
    if ann is float:
        return st.floats(min_value=-1, max_value=200) | st.just(float("nan"))
    if ann is str:
        return st.one_of(
            st.text(max_size=20),
            st.sampled_from(
                [
                    "/opt/inf",
                    "relative/dir",
                    "../up",
                    "/",
                    "tcp://127.0.0.1:5555",
                    "3.10",
                    "**/*.py",
                    "(",
                    "a{2,1}",
                    "x.prom",
                ]
            ),
        )
    return yaml_values


def model_documents(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[Any]:
    """A mapping using the model's real keys (each optional), sometimes an unknown key, and
    sometimes not a mapping at all."""
    if depth > 4:
        return yaml_values
    optional = {
        name: st.one_of(_plausible(field.annotation, depth), yaml_values)
        for name, field in model.model_fields.items()
    }
    documents = st.fixed_dictionaries({}, optional=optional)
    with_unknown = st.tuples(documents, plain_keys, yaml_values).map(lambda t: {**t[0], t[1]: t[2]})
    return st.one_of(documents, documents, with_unknown, yaml_values)
