"""Free, local triage: which changed files need no model call, and which need a human.

Pure: the caller reads blob texts and `.gitattributes` flags; `triage()` only decides.
Each skip carries a reason that is shown to the user (verdict.json, summary.md).
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections import Counter, deque
from dataclasses import dataclass

import pathspec

from bot.config.review import ReviewConfig
from bot.review.models import NotReviewed
from bot.review.pysyntax import Parses
from bot.review.types import FileChange

# The gate's own config is always protected: a PR must not be able to switch the gate off
# (e.g. empty review.protected.paths) in the same change that it gets reviewed with.
ALWAYS_PROTECTED = (".github/gatebot.yml",)

LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "pdm.lock",
        "Cargo.lock",
        "go.sum",
        "composer.lock",
        "Gemfile.lock",
        "Podfile.lock",
        "mix.lock",
        "pubspec.lock",
        "packages.lock.json",
        "flake.lock",
        "gradle.lockfile",
        "conda-lock.yml",
    }
)

# Well-known vendored and generated locations (gitignore semantics).
VENDORED_PATTERNS = (
    "vendor/",
    "third_party/",
    "third-party/",
    "node_modules/",
    "bower_components/",
    "Pods/",
    ".yarn/releases/",
)
GENERATED_PATTERNS = (
    "dist/",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*_pb2.py",
    "*_pb2.pyi",
    "*_pb2_grpc.py",
    "*.pb.go",
    "*.pb.cc",
    "*.pb.h",
    "*_generated.*",
    "*.generated.*",
    "__snapshots__/",
    "*.snap",
)

_VENDORED_SPEC = pathspec.GitIgnoreSpec.from_lines(VENDORED_PATTERNS)
_GENERATED_SPEC = pathspec.GitIgnoreSpec.from_lines(GENERATED_PATTERNS)

# Where indentation carries meaning, whitespace normalisation may only touch line ends.
_INDENT_SENSITIVE = re.compile(
    r"(\.(ya?ml|mk|haml|pug|sass|slim|coffee|nim|rst|md)$|(^|/)Makefile$)"
)

_SUBMODULE_MODE = 0o160000
_SYMLINK_MODE = 0o120000


@dataclass(frozen=True)
class Attributes:
    """`.gitattributes` flags of a path at the head commit."""

    generated: bool = False
    vendored: bool = False


@dataclass(frozen=True)
class Decision:
    skip_reason: str | None  # None: the file goes on to review
    needs_human: bool
    protected_by: str | None = None  # the matching protected pattern, for the summary
    # Set when the skip means "nobody can review this" (not "nothing to review"): the file
    # is listed as not reviewed and the gate fails closed (bot/review/verdict.py).
    not_reviewed: NotReviewed | None = None


def _literal(path: str) -> str:
    """A gitignore pattern matching exactly `path` from the root (wildcards escaped)."""
    return "/" + re.sub(r"([\\*?\[\]])", r"\\\1", path)


@dataclass(frozen=True)
class Rules:
    ignore: pathspec.PathSpec
    protected: pathspec.PathSpec
    protected_patterns: tuple[str, ...]
    max_file_bytes: int | None = None  # review.max_file_bytes: larger files are not reviewed

    @classmethod
    def from_config(cls, config: ReviewConfig) -> Rules:
        # The review rules files steer the gate like its config does: a human reviews them.
        rules_files = [_literal(r.file) for r in config.rules]
        patterns = tuple(dict.fromkeys([*config.protected.paths, *ALWAYS_PROTECTED, *rules_files]))
        return cls(
            ignore=pathspec.GitIgnoreSpec.from_lines(config.ignore),
            protected=pathspec.GitIgnoreSpec.from_lines(patterns),
            protected_patterns=patterns,
            max_file_bytes=config.max_file_bytes,
        )

    def protected_pattern(self, path: str) -> str | None:
        if not self.protected.match_file(path):
            return None
        for pattern in self.protected_patterns:
            if pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(path):
                return pattern
        return self.protected_patterns[0]


def too_large(change: FileChange, max_file_bytes: int | None) -> bool:
    """A side is over review.max_file_bytes: the diff made no hunks for it (bot.git.diff
    decides from the blob header with the same limit), so there is nothing to review."""
    return max_file_bytes is not None and max(change.old_size, change.new_size) > max_file_bytes


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def too_large_reason(change: FileChange, max_file_bytes: int) -> str:
    size = max(change.old_size, change.new_size)
    return f"too large to review: {_size(size)} > review.max_file_bytes ({_size(max_file_bytes)})"


def is_lock_file(path: str) -> bool:
    return posixpath.basename(path) in LOCK_FILES


def _same_tree(a: ast.AST, b: ast.AST) -> bool:
    # Breadth first, so the usual real change (a statement added or removed) is seen at the
    # top level at once instead of after dumping both trees. Positions are attributes, not
    # fields, so layout does not count.
    queue: deque[tuple[object, object]] = deque([(a, b)])
    while queue:
        x, y = queue.popleft()
        if type(x) is not type(y):
            return False
        if isinstance(x, ast.AST):
            queue.extend((getattr(x, f, None), getattr(y, f, None)) for f in x._fields)
        elif isinstance(x, list):
            assert isinstance(y, list)
            if len(x) != len(y):
                return False
            queue.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


_WORD = re.compile(r"\w+")


def _code_words(text: str) -> list[str]:
    # Comments cut naively at "#": imprecise inside strings, but the same on both sides.
    return _WORD.findall("\n".join(line.split("#", 1)[0] for line in text.splitlines()))


def _changed_words_equal(change: FileChange) -> bool:
    """The words of the removed lines and of the added lines are the same multiset.

    Unchanged lines are the same on both sides, so when the whole texts have the same code
    words (the precondition of python_ast_equal) so do the changed lines: this looks at the
    diff's few lines instead of the whole file, and rules out almost every real change.
    """
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    for hunk in change.hunks:
        for ln in hunk.lines:
            if ln.origin == "-":
                removed.update(_WORD.findall(ln.content.split("#", 1)[0]))
            elif ln.origin == "+":
                added.update(_WORD.findall(ln.content.split("#", 1)[0]))
    return removed == added


def python_ast_equal(old: str, new: str, parses: Parses | None = None) -> bool:
    """True when both parse and have the same AST (comments and layout do not count)."""
    # Parsing is the expensive part. Reformatting keeps every identifier, keyword and literal,
    # so different words mean a real change. (A wrong "different" here only costs a model call;
    # "equal" is always confirmed by the AST.)
    if _code_words(old) != _code_words(new):
        return False
    parses = parses or Parses()
    old_tree = parses.tree(old)
    new_tree = parses.tree(new) if old_tree is not None else None
    if old_tree is None or new_tree is None:
        return False
    try:
        return _same_tree(old_tree, new_tree)
    except RecursionError:
        return False


def whitespace_equal(path: str, old: str, new: str) -> bool:
    if _INDENT_SENSITIVE.search(path):

        def norm(t: str) -> list[str]:
            lines = [ln.rstrip() for ln in t.replace("\r\n", "\n").split("\n")]
            return [ln for ln in lines if ln]

        return norm(old) == norm(new)
    # As `git diff -w`: whitespace anywhere (also where the other side has none) is ignored.
    return "".join(old.split()) == "".join(new.split())


def formatting_only(
    path: str, old: str | None, new: str | None, parses: Parses | None = None
) -> str | None:
    """The reason when old → new changes only formatting, else None."""
    if old is None or new is None or old == new:
        return None
    if path.endswith((".py", ".pyi")):
        if python_ast_equal(old, new, parses):
            return "formatting-only change (equal Python AST)"
        return None
    if whitespace_equal(path, old, new):
        return "formatting-only change (equal after whitespace normalisation)"
    return None


def triage(
    change: FileChange,
    old_text: str | None,
    new_text: str | None,
    rules: Rules,
    attrs: Attributes = Attributes(),
    parses: Parses | None = None,
) -> Decision:
    """Skip or review, and whether a human must look. `parses` shares parse results with the
    local reviewer, so no text is parsed twice."""
    paths = [change.path] + ([change.old_path] if change.old_path else [])
    protected_by = next((p for p in map(rules.protected_pattern, paths) if p), None)
    needs_human = protected_by is not None

    def skip(reason: str) -> Decision:
        return Decision(reason, needs_human, protected_by)

    def unreadable(reason: str) -> Decision:
        # Skipped by the model, but not passed: content the gate cannot read is not reviewed.
        return Decision(
            reason, needs_human, protected_by, NotReviewed(cause="content", reason=reason)
        )

    if change.change == "deleted":
        return skip("deleted")
    if change.new_mode == _SUBMODULE_MODE:
        return unreadable("submodule pointer: the commits it points to are not reviewed")
    if change.binary:
        return unreadable("binary content: the gate cannot read it")
    if rules.ignore.match_file(change.path):
        return skip("ignored by review.ignore")
    if is_lock_file(change.path):
        return skip("lock file")
    if attrs.vendored:
        return skip("vendored (linguist-vendored)")
    if _VENDORED_SPEC.match_file(change.path):
        return skip("vendored (well-known path)")
    if attrs.generated:
        return skip("generated (linguist-generated)")
    if _GENERATED_SPEC.match_file(change.path):
        return skip("generated (well-known path)")
    if change.new_mode == _SYMLINK_MODE:
        return unreadable("symbolic link: its target is not reviewed")
    if change.old_oid is not None and change.old_oid == change.new_oid:
        if change.change == "renamed":
            return skip("renamed without content change")
        return skip("mode change only")
    if rules.max_file_bytes is not None and too_large(change, rules.max_file_bytes):
        return unreadable(too_large_reason(change, rules.max_file_bytes))
    python = change.path.endswith((".py", ".pyi"))
    if python and change.hunks and not _changed_words_equal(change):
        return Decision(None, needs_human, protected_by)  # a real change: no parse needed
    reason = formatting_only(change.path, old_text, new_text, parses)
    if reason:
        return skip(reason)
    return Decision(None, needs_human, protected_by)
