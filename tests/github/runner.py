"""How the Actions runner reads the files a step writes (used to check what we wrote)."""

from __future__ import annotations

from pathlib import Path


def parse_output_file(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT as the runner does: `name=value` lines and `name<<DELIM` blocks."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc != -1 and (eq == -1 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            body: list[str] = []
            while lines[i] != delimiter:  # IndexError: unterminated block, a broken file
                body.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(body)
        else:
            assert eq > 0, f"malformed GITHUB_OUTPUT line {line!r}"
            out[line[:eq]] = line[eq + 1 :]
    return out
