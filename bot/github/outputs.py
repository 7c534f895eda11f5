"""Write step outputs to $GITHUB_OUTPUT (and text to $GITHUB_STEP_SUMMARY).

Every value uses the runner's multiline form `name<<DELIMITER\\nvalue\\nDELIMITER`, with a
random delimiter that is checked against the value, so no value can inject another output.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from bot.errors import UsageError


def format_outputs(values: Mapping[str, str]) -> str:
    chunks: list[str] = []
    for name, value in values.items():
        if not name or any(c in name for c in "<\r\n=") or name != name.strip():
            raise UsageError(f"invalid step output name {name!r}")
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        # A collision is astronomically unlikely; refusing beats writing a corrupt file.
        if delimiter in value or delimiter in name:
            raise UsageError(f"step output {name!r} contains its own delimiter")
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def append_file(path: Path, text: str) -> None:
    """Append to a runner file command file ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY)."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    append_file(path, format_outputs(values))


def parse_outputs(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file back as the runner does (both `k=v` and heredoc forms)."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise UsageError(f"GITHUB_OUTPUT: no closing delimiter for {name!r}")
            i += 1
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        else:
            raise UsageError(f"GITHUB_OUTPUT: malformed line {line!r}")
    return out
