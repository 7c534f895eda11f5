"""The workflow-command outlet: `::error file=…,line=…::message` lines shown as annotations.

Used when the check run cannot be posted (fork PRs, read-only tokens, post-check off).
Escaping follows the runner's (actions/toolkit `command.ts`): in the message `%`, CR and LF;
in property values additionally `:` and `,`. The runner displays at most 10 error, 10 warning
and 10 notice annotations per step, so the most severe go first and the overflow is counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.github.annotations import Annotation
from bot.github.limits import COMMAND_ANNOTATIONS_PER_LEVEL
from bot.inert import printable

_COMMAND_FOR_LEVEL = {"failure": "error", "warning": "warning", "notice": "notice"}


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: dict[str, str | int] | None = None) -> str:
    props = ""
    if properties:
        props = " " + ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items())
    return f"::{name}{props}::{escape_data(message)}"


def annotation_command(a: Annotation) -> str:
    # Model text and file names are data: controls and format characters spelled out (a line
    # break in the message stays one, carried as %0A), then escaped as the runner expects.
    props: dict[str, str | int] = {"file": printable(a.path), "line": a.start_line}
    if a.end_line != a.start_line:
        props["endLine"] = a.end_line
    props["title"] = printable(a.title)
    return command(_COMMAND_FOR_LEVEL[a.level], printable(a.message, keep="\n"), props)


def add_mask(secret: str) -> str | None:
    """`::add-mask::` for each line of a secret (the runner masks line by line); None if empty."""
    lines = [line for line in secret.splitlines() if line.strip()]
    if not lines:
        return None
    return "\n".join(f"::add-mask::{escape_data(line)}" for line in lines)


def annotation_commands(
    annotations: Sequence[Annotation], per_level: int = COMMAND_ANNOTATIONS_PER_LEVEL
) -> tuple[list[str], int]:
    """Commands for the annotations the runner will display, and how many were left out.

    `annotations` must be most severe first (annotations_for() sorts them that way).
    """
    shown: dict[str, int] = {}
    lines: list[str] = []
    omitted = 0
    for a in annotations:
        if shown.get(a.level, 0) >= per_level:
            omitted += 1
            continue
        shown[a.level] = shown.get(a.level, 0) + 1
        lines.append(annotation_command(a))
    return lines, omitted
