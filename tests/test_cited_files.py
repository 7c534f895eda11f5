"""Docstrings and comments in bot/ cite only files that exist in this repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A path with a directory and an extension, not part of a longer path or a placeholder.
CITED = re.compile(r"(?<![\w/.$<{-])((?:[\w.-]+/)+[\w.-]+\.(?:md|py|yml|yaml|json|toml|txt))\b")
# Files in the user's repository or on the host, named as such (not citations of ours).
USER_FILES = {".github/gatebot.yml", ".github/gatebot-rules.md"}


def test_every_cited_file_exists() -> None:
    missing = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in CITED.finditer(text):
            ref = m.group(1)
            # A placeholder (DIR/verdict.json) or a workflow ref of some repository
            # (owner/repo/.github/workflows/x.yml) is not a citation.
            if ref in USER_FILES or ref.split("/")[0].isupper() or "/.github/" in ref:
                continue
            places = (ROOT / ref, path.parent / ref, path.parent.parent / ref, ROOT / "bot" / ref)
            if not any(p.exists() for p in places):
                line = text[: m.start()].count("\n") + 1
                missing.append(f"{path.relative_to(ROOT)}:{line}: {ref}")
    assert missing == []
