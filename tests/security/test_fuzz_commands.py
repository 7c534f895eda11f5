"""Workflow commands built from untrusted text (model messages, file names, finding titles).

The runner reads every stdout line that starts with `::` as a command. Whatever the text, the
command gatebot prints must be exactly one line, and the runner's own decoding must give back
exactly the text (actions/toolkit `command.ts` escaping; the runner unescapes `%25`, `%0D`,
`%0A`, and in properties also `%3A` and `%2C`), so no text can end the data early, add a
property or start a second command.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.github.annotations import Annotation
from bot.github.commands import add_mask, annotation_command, command
from bot.inert import printable
from tests.security.strategies import fuzz_settings

FUZZ = fuzz_settings(300)

_DATA_CODES = {"%25": "%", "%0D": "\r", "%0A": "\n"}
_PROPERTY_CODES = {**_DATA_CODES, "%3A": ":", "%2C": ","}

hostile_text = st.lists(
    st.sampled_from(["a", ":", ",", "=", "%", "\r", "\n", " ", "::", "%0A", "%25", "\u2028"]),
    max_size=12,
).map("".join) | st.text(max_size=30)


def _decode(text: str, codes: dict[str, str]) -> str:
    """The runner's unescaping, left to right (a literal `%0A` was sent as `%250A`)."""
    out = []
    i = 0
    while i < len(text):
        token = text[i : i + 3]
        if token in codes:
            out.append(codes[token])
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """(command, properties, data) as the runner's ActionCommand.TryParseV2 splits a line."""
    assert line.startswith("::")
    head, sep, data = line[2:].partition("::")
    assert sep, f"no data separator in {line!r}"
    name, _, props_text = head.partition(" ")
    props: dict[str, str] = {}
    if props_text:
        for pair in props_text.split(","):
            key, eq, value = pair.partition("=")
            assert eq, f"property without '=' in {line!r}"
            props[key] = _decode(value, _PROPERTY_CODES)
    return name, props, _decode(data, _DATA_CODES)


@FUZZ
@given(st.sampled_from(["error", "warning", "notice"]), hostile_text, hostile_text, hostile_text)
def test_a_command_is_one_line_and_decodes_to_its_input(
    name: str, message: str, file: str, title: str
) -> None:
    line = command(name, message, {"file": file, "title": title})
    assert "\n" not in line and "\r" not in line
    assert parse(line) == (name, {"file": file, "title": title}, message)


@FUZZ
@given(
    hostile_text,
    hostile_text,
    hostile_text,
    st.integers(1, 10_000),
    st.integers(0, 5),
    st.sampled_from(["failure", "warning", "notice"]),
)
def test_annotation_commands_carry_exactly_the_finding(
    path: str, title: str, message: str, line_no: int, span: int, level: str
) -> None:
    a = Annotation(path, line_no, line_no + span, level, title, message, "high")  # type: ignore[arg-type]
    text = annotation_command(a)
    assert "\n" not in text and "\r" not in text
    name, props, data = parse(text)
    assert name == {"failure": "error", "warning": "warning", "notice": "notice"}[level]
    # The text comes back as data: control and format characters spelled out (bot/inert.py),
    # a line break in the message kept as one.
    assert data == printable(message, keep="\n")
    assert props["file"] == printable(path) and props["title"] == printable(title)
    assert all(c.isprintable() or c == "\n" for c in data)
    assert int(props["line"]) == line_no


@FUZZ
@given(st.text(max_size=200))
def test_add_mask_masks_every_line_and_nothing_else(secret: str) -> None:
    out = add_mask(secret)
    wanted = [ln for ln in secret.splitlines() if ln.strip()]
    if not wanted:
        assert out is None
        return
    assert out is not None
    lines = out.split("\n")
    assert all(re.match(r"^::add-mask::", ln) for ln in lines)
    assert [parse(ln)[2] for ln in lines] == wanted
