"""The published JSON Schema of `.github/gatebot.yml` and the key reference in the docs.

Both are generated from the pydantic models, so they cannot drift from what the loader accepts:
    python -m bot.config.schema            regenerate docs/gatebot.schema.json and the reference
                                           block of docs/configuration.md
    python -m bot.config.schema --check    fail when either is out of date (CI, tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.config.model import GatebotConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_PATH = DOCS / "gatebot.schema.json"
CONFIG_DOC_PATH = DOCS / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m bot.config.schema) -->"
END = "<!-- END GENERATED REFERENCE -->"


def render_schema() -> str:
    schema = GatebotConfig.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gatebot configuration (.github/gatebot.yml)",
        **{k: v for k, v in schema.items() if k != "title"},
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The nested model of a field (directly, optional, or as dict values) and a key suffix."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return (models[0], "") if len(models) == 1 else (None, "")
    if origin is dict and len(args) == 2:
        inner, _ = _model_in(args[1])
        return inner, ".<name>"
    return None, ""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "*required*"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):  # e.g. a list of sub-models: shown as the file writes them
        value = [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 80:
        if not isinstance(value, list):
            return "(long)"
        text = f"{text[:60]}…"
        return f"`{_cell(text)}` ({len(value)} items)"
    return f"`{_cell(text)}`"


def _cell(text: str) -> str:
    # GFM ends a table cell at "|", even inside a code span, unless it is escaped.
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested, suffix = _model_in(field.annotation)
        desc = field.description or ""
        if not desc and nested is not None and nested.__doc__:
            desc = nested.__doc__.strip().splitlines()[0]
        desc = desc.replace("|", "\\|")
        if nested is not None:
            rows.append(f"| `{key}{suffix}` | section | {_default(field)} | {desc} |")
            rows += _rows(nested, f"{key}{suffix}.")
        else:
            rows.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |"
            )
    return rows


def render_reference() -> str:
    out = [BEGIN, ""]
    for section, field in GatebotConfig.model_fields.items():
        nested, _ = _model_in(field.annotation)
        assert nested is not None
        out += [f"### `{section}:`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        out += _rows(nested, f"{section}.")
        out.append("")
    out.append(END)
    return "\n".join(out)


def render_config_doc(current: str) -> str:
    if BEGIN not in current or END not in current:
        raise ValueError(f"{CONFIG_DOC_PATH} lacks the generated-reference markers")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render_reference() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.config.schema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    doc = CONFIG_DOC_PATH.read_text("utf-8")
    wanted = {SCHEMA_PATH: render_schema(), CONFIG_DOC_PATH: render_config_doc(doc)}
    stale = [
        p for p, text in wanted.items() if (p.read_text("utf-8") if p.exists() else "") != text
    ]
    if args.check:
        for path in stale:
            sys.stderr.write(f"{path} is out of date: run python -m bot.config.schema\n")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
