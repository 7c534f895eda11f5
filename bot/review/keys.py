"""The review cache key: what the model was shown and asked, from the raw bytes.

Nothing is normalised. A whitespace change can change meaning (a space after a trailing
backslash in a shell script, indentation in YAML or Python, a line end in a heredoc), so two
contents get the same key only when their bytes are identical. The key also covers the path
and the old path, the file modes (a file that became executable is reviewed anew), how the file
is shown (`view`: its diff, or its whole content as added), the model, the prompt and rules
version and the lines of context: everything that shapes the answer.
"""

from __future__ import annotations

import hashlib
import json

ABSENT = "absent"


def content_hash(data: bytes | None) -> str:
    """SHA-256 of the raw bytes of one side; ABSENT when the side does not exist."""
    if data is None:
        return ABSENT
    return hashlib.sha256(data).hexdigest()


def cache_key(
    *,
    path: str,
    old_path: str | None,
    old_hash: str,
    new_hash: str,
    old_mode: int,
    new_mode: int,
    view: str,
    model: str,
    prompt_version: str,
    rules_hash: str,
    context_lines: int,
) -> str:
    # JSON keeps the fields unambiguous (no separator can collide with a path); a path that is
    # not valid UTF-8 (surrogate-escaped by pygit2) is kept byte for byte by ensure_ascii.
    payload = json.dumps(
        [
            path,
            old_path,
            old_hash,
            new_hash,
            old_mode,
            new_mode,
            view,
            model,
            prompt_version,
            rules_hash,
            context_lines,
        ],
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()
