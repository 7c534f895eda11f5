"""Repository review rules: `review.rules` files (or one markdown section of each) read at the
BASE of the change, and `review.path_instructions` from the base configuration.

Read with pygit2 from the base's tree, like the configuration (bot/review/config_source.py):
the PR's head never chooses the rules it is judged by; a change to a rules file is reviewed as
code and applies to the pull requests after it. The text goes into the prompt's stable prefix
(bot/review/prompt.py `stable_prefix`), so it is billed at the cached rate from the second call
on. The cache key of each file covers the rules that apply to it (bot/review/prompt.py
`rules_hash`): editing the rules file re-reviews everything, a per-path instruction only the
files its glob matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pygit2

from bot.config.review import DEFAULT_RULES_FILE, ReviewConfig, RulesSource
from bot.git import blobs

MAX_RULES_CHARS = 20_000  # all rules together (~5k tokens, paid at the cached rate)
MAX_FILE_BYTES = 256 * 1024
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class RepoRules:
    sections: tuple[tuple[str, str], ...]  # (title, text) for the prompt's stable prefix
    sources: tuple[str, ...]  # what was read, for the summary
    warnings: tuple[str, ...]


def markdown_section(text: str, heading: str) -> str | None:
    """The body under the first heading whose text is `heading` (case-insensitive), up to the
    next heading of the same or a higher level; None when there is no such heading."""
    lines = text.split("\n")
    wanted = heading.strip().casefold()
    fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        if m is None or m.group(2).strip().casefold() != wanted:
            continue
        level, body, inner = len(m.group(1)), [], False
        for rest in lines[i + 1 :]:
            if rest.lstrip().startswith(("```", "~~~")):
                inner = not inner
            n = None if inner else _HEADING.match(rest)
            if n is not None and len(n.group(1)) <= level:
                break
            body.append(rest)
        return "\n".join(body).strip()
    return None


def _read(repo: pygit2.Repository, commit_sha: str, src: RulesSource) -> tuple[str | None, str]:
    where = f"{src.file}{f' § {src.section}' if src.section else ''} @ base {commit_sha[:7]}"
    try:
        data = blobs.read_path_at(repo, commit_sha, src.file, MAX_FILE_BYTES)
    except ValueError as exc:  # a directory, a link, a submodule, too large
        return None, f"review rules {where} not read: {exc}"
    if data is None:
        quiet = src.file == DEFAULT_RULES_FILE and src.section is None
        return None, "" if quiet else f"review rules {where} not found"
    text = _CONTROL.sub("", data.decode("utf-8", "replace").replace("\r\n", "\n"))
    if src.section is not None:
        body = markdown_section(text, src.section)
        if body is None:
            return None, f"review rules {where}: no such section"
        text = body
    return text.strip() or None, where


def load(repo: pygit2.Repository, commit_sha: str, review: ReviewConfig) -> RepoRules:
    """The rules of `review.rules` as committed at `commit_sha` (the base)."""
    sections: list[tuple[str, str]] = []
    sources: list[str] = []
    warnings: list[str] = []
    budget = MAX_RULES_CHARS
    for src in review.rules:
        text, where = _read(repo, commit_sha, src)
        if text is None:
            if where:
                warnings.append(where)
            continue
        if len(text) > budget:
            warnings.append(
                f"review rules {where}: cut to {budget:,} of {len(text):,} characters "
                f"(all rules together are limited to {MAX_RULES_CHARS:,})"
            )
            text = text[:budget]
        budget -= len(text)
        title = f"Repository review rules ({src.file}{f', {src.section}' if src.section else ''})"
        sections.append((title, text))
        sources.append(where)
        if budget <= 0:
            break
    return RepoRules(tuple(sections), tuple(sources), tuple(warnings))


def label(config_label: str, rules: RepoRules) -> str:
    """The summary's `Config` line, with the rules read (or not) beside the config file."""
    parts = [config_label]
    if rules.sources:
        parts.append("rules: " + ", ".join(rules.sources))
    parts += rules.warnings
    return "; ".join(parts)
