"""Free, local triage: which changed files need no model call, which cannot be reviewed, and
which need a human.

Sound by construction: a file is skipped (passed without a model) only when the skip provably
cannot change behaviour, or when the base branch's own policy says so (`review.ignore` from the
base config; linguist-generated, linguist-vendored or -diff from the base `.gitattributes`).
Nothing the PR controls — its file names, its own `.gitattributes`, its config — picks a skip.
What the gate cannot read (too large, binary that is not a known data format, a Git LFS pointer,
a submodule's commits, an unreadable object) is "not reviewed": listed with its reason, never a
silent pass. The rules, in order, are in docs/review.md ("Triage").

Pure: the caller reads the bytes and the base attributes; `triage()` only decides.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import pathspec

from bot.config.review import ReviewConfig
from bot.inert import unicode_safe
from bot.review import content, formatting, lockfiles
from bot.review.models import Finding, NotReviewed
from bot.review.pysyntax import Parses
from bot.review.types import FileChange

# The gate's own policy is always protected: a PR must not be able to switch the gate off
# (e.g. empty review.protected.paths) in the same change that it gets reviewed with, nor get
# later PRs' files skipped by marking them generated or vendored in a `.gitattributes` (any
# directory: a pattern without a slash matches at every depth).
ALWAYS_PROTECTED = (".github/gatebot.yml", ".gitattributes")

# Well-known vendored and generated locations (gitignore semantics). A hint only: the PR picks
# its file names, so these paths are reviewed like any other (see module docstring); the base
# `.gitattributes` is where a maintainer exempts them.
WELL_KNOWN_PATTERNS = (
    "vendor/",
    "third_party/",
    "third-party/",
    "node_modules/",
    "bower_components/",
    "Pods/",
    ".yarn/releases/",
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
_WELL_KNOWN = pathspec.GitIgnoreSpec.from_lines(WELL_KNOWN_PATTERNS)


@dataclass(frozen=True)
class Attributes:
    """`.gitattributes` flags of a path at the base (bot.git.attributes)."""

    generated: bool = False
    vendored: bool = False
    diff_disabled: bool = False


@dataclass(frozen=True)
class Contents:
    """The bytes triage looks at (None: the side is absent, or was not read)."""

    old: bytes | None = None
    new: bytes | None = None
    too_large: bool = False  # a side is over review.max_file_bytes: not read
    unreadable: bool = False  # a blob side could not be read from the repository


@dataclass(frozen=True)
class Decision:
    skip_reason: str | None  # None: the file goes on to review (by the model, when there is one)
    needs_human: bool
    protected_by: str | None = None  # the matching protected pattern, for the summary
    # Set when nobody can review this file (not "nothing to review"): listed as not reviewed,
    # cause content, and the gate fails closed (bot/review/verdict.py).
    not_reviewed: NotReviewed | None = None
    # Review the whole new content as added (it became executable, moved out of a skipped
    # path, or its old side was binary): its diff would show nothing.
    whole_file: bool = False
    findings: tuple[Finding, ...] = field(default=())  # deterministic (the lock-file check)
    note: str | None = None  # why a file that looks skippable is reviewed


# Code points HFS+ leaves out of a name (git's list for `.git`): with one, it is the same file.
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def folded(path: str) -> str:
    """`path` as a case-insensitive, normalising file system names it — where macOS and Windows
    runners and developers' machines check the tree out, `Action.yml` *is* `action.yml`: NFC,
    case folded, HFS+'s ignored code points left out, and each component's trailing dots and
    spaces dropped (Windows). For protected paths only: folding makes more paths need a
    human, never fewer (review.ignore and the base attributes stay exact, as git reads them)."""
    text = unicodedata.normalize("NFC", _HFS_IGNORED.sub("", path)).casefold()
    return "/".join(part.rstrip(". ") or part for part in text.split("/"))


def _fold_pattern(pattern: str) -> str:
    return unicodedata.normalize("NFC", pattern).casefold()


def _literal(path: str) -> str:
    """A gitignore pattern matching exactly `path` from the root (wildcards escaped)."""
    return "/" + re.sub(r"([\\*?\[\]])", r"\\\1", path)


@dataclass(frozen=True)
class Rules:
    ignore: pathspec.PathSpec
    protected: pathspec.PathSpec
    protected_patterns: tuple[str, ...]
    max_file_bytes: int | None = None  # review.max_file_bytes: larger files are not reviewed
    # The protected patterns folded (`folded`), matched against folded paths as well.
    protected_folded: pathspec.PathSpec | None = None

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
            protected_folded=pathspec.GitIgnoreSpec.from_lines(map(_fold_pattern, patterns)),
        )

    def protected_pattern(self, path: str) -> str | None:
        # Globs are text: a file name that is not UTF-8 (pygit2 reads it with surrogateescape,
        # which pathspec's RE2 backend cannot encode) is matched as its escaped text.
        path = unicode_safe(path)
        if self.protected.match_file(path):
            return self._which(path, lambda p: p)
        if self.protected_folded is not None and self.protected_folded.match_file(folded(path)):
            return self._which(folded(path), _fold_pattern)
        return None

    def _which(self, path: str, form: Callable[[str], str]) -> str:
        """The first protected pattern (as configured) whose `form` matches `path`."""
        for pattern in self.protected_patterns:
            if pathspec.GitIgnoreSpec.from_lines([form(pattern)]).match_file(path):
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
    return lockfiles.is_lock_file(path)


def policy_skip(path: str, rules: Rules, attrs: Attributes) -> str | None:
    """The base branch's own reason to skip `path`, or None."""
    if rules.ignore.match_file(unicode_safe(path)):
        return "ignored by review.ignore"
    if attrs.vendored:
        return "vendored (linguist-vendored in the base .gitattributes)"
    if attrs.generated:
        return "generated (linguist-generated in the base .gitattributes)"
    if attrs.diff_disabled:
        return "binary (-diff in the base .gitattributes)"
    return None


def _binary_decision(path: str, contents: Contents, new_mode: int) -> tuple[str | None, str]:
    """(skip reason, not-reviewed reason) for binary new content: one of them is set."""
    fmt = content.inert_format(path, contents.new)
    if fmt and new_mode != content.EXECUTABLE_MODE:
        return f"binary ({fmt})", ""
    size = _size(len(contents.new or b""))
    return None, f"binary content the gate cannot review ({size}; not a known data format)"


def triage(
    change: FileChange,
    contents: Contents,
    rules: Rules,
    attrs: Attributes = Attributes(),
    parses: Parses | None = None,
    old_attrs: Attributes | None = None,
) -> Decision:
    """Skip, review, or not reviewable — and whether a human must look. `attrs` (and
    `old_attrs`, for a rename's old path) come from the base. `parses` shares parse results
    with the local reviewer, so no text is parsed twice."""
    paths = [change.path] + ([change.old_path] if change.old_path else [])
    protected_by = next((p for p in map(rules.protected_pattern, paths) if p), None)
    needs_human = protected_by is not None

    def skip(reason: str, findings: tuple[Finding, ...] = ()) -> Decision:
        return Decision(reason, needs_human, protected_by, findings=findings)

    def not_reviewed(reason: str) -> Decision:
        why = NotReviewed(cause="content", reason=reason)
        return Decision(reason, needs_human, protected_by, not_reviewed=why)

    def review(
        *, whole: bool = False, findings: tuple[Finding, ...] = (), note: str | None = None
    ) -> Decision:
        # The model must be shown the change: a diff that shows nothing of content that is
        # there (a submodule that became a file: libgit2 makes no hunks) is the whole file.
        whole = whole or (not change.hunks and bool(contents.new))
        return Decision(None, needs_human, protected_by, None, whole, findings, note)

    old, new = contents.old, contents.new
    if change.change == "deleted":
        return skip("deleted")
    lock = is_lock_file(change.path)
    lock_findings: tuple[Finding, ...] = ()
    if lock and new is not None and not content.is_binary(new):
        old_text = old.decode("utf-8", "replace") if old is not None else None
        lock_findings = tuple(
            lockfiles.check(
                change.path, old_text, new.decode("utf-8", "replace"), change.changed_lines
            )
        )
    reason = policy_skip(change.path, rules, attrs)
    if reason:
        return skip(reason, lock_findings)
    if change.new_mode == content.SUBMODULE_MODE:
        old_sha = f"{change.old_oid[:12]}.." if change.old_oid else ""
        return not_reviewed(
            f"submodule pointer moved ({old_sha}{(change.new_oid or '')[:12]}): the gate cannot "
            "review the submodule's commits"
        )
    if contents.unreadable:
        return not_reviewed("unreadable: a blob is missing from the repository (fetch it)")
    if contents.too_large or too_large(change, rules.max_file_bytes):
        limit = rules.max_file_bytes or 0
        shrunk = new is not None and change.new_size <= limit and not content.is_binary(new)
        if not shrunk:
            return not_reviewed(too_large_reason(change, limit))
        # Only the old side was over the limit: the new content is read and reviewed whole.
        return review(whole=True, note="the old side was too large: reviewed as a new file")
    if content.is_lfs_pointer(new):
        return not_reviewed("a Git LFS pointer: the content is stored outside the repository")
    if change.binary or content.is_binary(new):
        if new is None:
            return not_reviewed("binary content the gate cannot read")
        skip_reason, why = _binary_decision(change.path, contents, change.new_mode)
        return skip(skip_reason) if skip_reason else not_reviewed(why)
    if content.is_binary(old):
        return review(whole=True, note="was binary: reviewed as a new file")
    script = content.is_script(change.new_mode, new)
    if lock and not script:
        if lock_findings:
            return review(findings=lock_findings, note="lock file with new package sources")
        return skip("lock file (package sources unchanged)")
    if change.new_mode == content.SYMLINK_MODE:
        return review(note="symbolic link: its target is reviewed")
    # Before formatting-only: a diff of unchanged or reformatted bytes says nothing when the
    # file changed what it is (a link or submodule became a file, it became executable) or
    # where it is (out of a skipped path, into another kind of file).
    whole = whole_file_reason(change, old, new, rules, old_attrs)
    if whole:
        return review(whole=True, note=whole)
    if change.old_oid is not None and change.old_oid == change.new_oid:
        if change.change == "renamed":
            return skip("renamed without content change")
        return skip("mode change only (not executable any more)")
    reason = None
    if change.hunks and not (
        content.language(change.path, new) == "python"
        and not formatting.changed_words_equal(change)
    ):
        modes = (change.old_mode, change.new_mode)
        reason = formatting.formatting_only(change.path, old, new, parses, modes)
    if reason:
        return skip(reason)
    note = (
        "well-known generated/vendored path (reviewed)"
        if _WELL_KNOWN.match_file(unicode_safe(change.path))
        else None
    )
    return review(note=note)


def kind_of(path: str, data: bytes | None) -> tuple[str, str]:
    """What sort of file a path holds, for renames: its language (a shebang decides) and its
    extension — or its whole name when it has none (`Dockerfile`, `Makefile`, `.envrc`)."""
    base = posixpath.basename(path)
    ext = posixpath.splitext(base)[1].lower()
    return content.language(path, data), ext or base


def whole_file_reason(
    change: FileChange,
    old: bytes | None,
    new: bytes | None,
    rules: Rules,
    old_attrs: Attributes | None,
) -> str | None:
    """Why the new content is reviewed whole although its diff (none, or whitespace) would
    show nothing: what the file is or where it is changed. None: its diff says it all."""
    if change.change in ("added", "deleted"):
        return None  # an added file's diff is the whole file already
    if change.old_mode in (content.SYMLINK_MODE, content.SUBMODULE_MODE):
        was = "symbolic link" if change.old_mode == content.SYMLINK_MODE else "submodule"
        return f"was a {was}: reviewed as a new file"
    if change.new_mode == content.EXECUTABLE_MODE and change.old_mode != content.EXECUTABLE_MODE:
        return "made executable: reviewed as a new file"
    if change.old_path and change.old_path != change.path:
        moved_out = policy_skip(change.old_path, rules, old_attrs or Attributes()) is not None
        # A lock-file name is the one skip a file's own name picks: only its package sources
        # were checked, never the rest of its text (package-lock.json → package.json).
        out_of_lock = is_lock_file(change.old_path) and not is_lock_file(change.path)
        if moved_out or out_of_lock or kind_of(change.old_path, old) != kind_of(change.path, new):
            return "renamed into review: reviewed as a new file"
        if change.old_mode != change.new_mode:
            return "renamed with a mode change: reviewed as a new file"
    return None
