"""Normalised content hashes and the review cache key.

Normalisation drops what cannot change a review (line-ending style, trailing whitespace,
trailing blank lines) but keeps line numbers stable, so cached findings still point at the
right lines.
"""

from __future__ import annotations

import hashlib
import json

ABSENT = "absent"


def normalise_text(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(ln.rstrip() for ln in lines).rstrip("\n")


def content_hash(text: str | None, oid: str | None = None) -> str:
    """Hash of the normalised text; falls back to the blob id (content-addressed) when the
    text was not read (binary or too large); ABSENT when the side does not exist."""
    if text is not None:
        return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
    if oid is not None:
        return f"blob:{oid}"
    return ABSENT


def cache_key(
    *,
    path: str,
    old_hash: str,
    new_hash: str,
    model: str,
    prompt_version: str,
    rules_hash: str,
    context_lines: int,
) -> str:
    # JSON encoding keeps the fields unambiguous (no separator can collide with a path).
    payload = json.dumps(
        [path, old_hash, new_hash, model, prompt_version, rules_hash, context_lines],
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
