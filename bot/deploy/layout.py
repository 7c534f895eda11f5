"""The remote layout on a target host: path helpers and release ids.

Binding for deploy, audit and doctor:

    <path>/releases/<release-id>/        one directory per release, complete when its marker exists
    <path>/current -> releases/<id>      RELATIVE symlink, switched by renaming a temp link over it
    <path>/shared/<name>                 linked into each release as <release>/<name>
    <path>/venvs/<lock-hash>/            one venv per dependency lock (done: .gatebot-complete)
    <release>/.venv -> ../../venvs/<lock-hash>
    <release>/.gatebot-release.json      completion marker, written last (temp + rename)
    <path>/.gatebot/lock/owner.json      the deploy lock (atomic mkdir) and who holds it
    <path>/.gatebot/deploy.jsonl         the append-only deploy log
    <path>/.gatebot/env/<id>.env         a release's environment file (0600), linked into it
    <path>/.gatebot/run/<id>.json|.log   the process a health-gated deploy started for <id>

Release id: `YYYYmmddTHHMMSSZ-<sha7>` (UTC), with `-2`, `-3`, ... appended when the same id
already exists. Everything here is pure: no I/O.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

# The names are defined once, with the host program that uses them too.
from bot.deploy.hostside.protocol import (
    CURRENT_LINK as CURRENT_LINK,
)
from bot.deploy.hostside.protocol import (
    DEPLOY_LOG as DEPLOY_LOG,
)
from bot.deploy.hostside.protocol import (
    ENV_DIR as ENV_DIR,
)
from bot.deploy.hostside.protocol import (
    LOCK_DIR as LOCK_DIR,
)
from bot.deploy.hostside.protocol import (
    LOCK_OWNER_FILE as LOCK_OWNER_FILE,
)
from bot.deploy.hostside.protocol import (
    RELEASE_INDEX as RELEASE_INDEX,
)
from bot.deploy.hostside.protocol import (
    RELEASE_MARKER as RELEASE_MARKER,
)
from bot.deploy.hostside.protocol import (
    RELEASES_DIR as RELEASES_DIR,
)
from bot.deploy.hostside.protocol import (
    RUN_DIR as RUN_DIR,
)
from bot.deploy.hostside.protocol import (
    SHARED_DIR as SHARED_DIR,
)
from bot.deploy.hostside.protocol import (
    STATE_DIR as STATE_DIR,
)
from bot.deploy.hostside.protocol import (
    VENV_COMPLETE as VENV_COMPLETE,
)
from bot.deploy.hostside.protocol import (
    VENV_LINK as VENV_LINK,
)
from bot.deploy.hostside.protocol import (
    VENVS_DIR as VENVS_DIR,
)

#: Names inside a release that are not part of the git tree (never compared with the manifest).
RELEASE_MANAGED = (VENV_LINK, RELEASE_MARKER, RELEASE_INDEX)

RELEASE_ID_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<sha7>[0-9a-f]{7})(?:-(?P<seq>[0-9]+))?$")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class RemoteLayout:
    """Absolute paths under one target's `path`. Construct with the target's (absolute) path."""

    root: str

    @property
    def releases(self) -> str:
        return posixpath.join(self.root, RELEASES_DIR)

    @property
    def current(self) -> str:
        return posixpath.join(self.root, CURRENT_LINK)

    @property
    def shared(self) -> str:
        return posixpath.join(self.root, SHARED_DIR)

    @property
    def venvs(self) -> str:
        return posixpath.join(self.root, VENVS_DIR)

    @property
    def state(self) -> str:
        return posixpath.join(self.root, STATE_DIR)

    @property
    def lock_dir(self) -> str:
        return posixpath.join(self.root, LOCK_DIR)

    @property
    def lock_owner(self) -> str:
        return posixpath.join(self.lock_dir, LOCK_OWNER_FILE)

    @property
    def deploy_log(self) -> str:
        return posixpath.join(self.root, DEPLOY_LOG)

    def release(self, release_id: str) -> str:
        check_release_id(release_id)
        return posixpath.join(self.releases, release_id)

    def marker(self, release_id: str) -> str:
        return posixpath.join(self.release(release_id), RELEASE_MARKER)

    def release_index(self, release_id: str) -> str:
        return posixpath.join(self.release(release_id), RELEASE_INDEX)

    def venv(self, lock_hash: str) -> str:
        return posixpath.join(self.venvs, lock_hash)

    def shared_entry(self, name: str) -> str:
        return posixpath.join(self.shared, posixpath.normpath(name))

    @property
    def env_dir(self) -> str:
        return posixpath.join(self.root, ENV_DIR)

    def env_file(self, release_id: str) -> str:
        return posixpath.join(self.env_dir, check_release_id(release_id) + ".env")

    @property
    def run_dir(self) -> str:
        return posixpath.join(self.root, RUN_DIR)

    def run_files(self, release_id: str) -> tuple[str, str]:
        """The record and the log of the process started for a release."""
        base = posixpath.join(self.run_dir, check_release_id(release_id))
        return base + ".json", base + ".log"

    def owned_by(self, release_id: str) -> list[str]:
        """Everything that goes when the release goes (retention)."""
        return [self.release(release_id), self.env_file(release_id), *self.run_files(release_id)]


def check_release_id(release_id: str) -> str:
    """Return `release_id` if it is well formed; ValueError otherwise (it becomes a path)."""
    if not RELEASE_ID_RE.match(release_id):
        raise ValueError(f"not a release id: {release_id!r} (expected YYYYmmddTHHMMSSZ-<sha7>)")
    return release_id


def is_release_id(name: str) -> bool:
    return RELEASE_ID_RE.match(name) is not None


def make_release_id(sha: str, now: datetime, existing: Collection[str] = ()) -> str:
    """The id for a new release of `sha` made at `now`; unique among `existing` ids."""
    if now.tzinfo is None:
        raise ValueError("release ids are made from an aware (UTC) time")
    if not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        raise ValueError(f"not a commit sha: {sha!r}")
    stamp = now.astimezone(timezone.utc).strftime(_STAMP_FORMAT)
    base = f"{stamp}-{sha[:7]}"
    # Ids sort by (stamp, seq, sha): two releases made in the same second, of any shas, must
    # get increasing sequence numbers, or "newest" would depend on the shas' spelling.
    same_second = [
        int(m["seq"] or 1)
        for m in (RELEASE_ID_RE.match(e) for e in existing)
        if m is not None and m["stamp"] == stamp
    ]
    if not same_second:
        return base
    return f"{base}-{max(same_second) + 1}"


def release_time(release_id: str) -> datetime:
    """When a release was made, from its id."""
    m = RELEASE_ID_RE.match(release_id)
    if m is None:
        raise ValueError(f"not a release id: {release_id!r}")
    return datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=timezone.utc)


def release_sort_key(release_id: str) -> tuple[str, int, str]:
    """Chronological order of ids (time, then the -N sequence), stable for equal times."""
    m = RELEASE_ID_RE.match(release_id)
    if m is None:
        return ("", 0, release_id)
    return (m["stamp"], int(m["seq"] or 1), m["sha7"])


def sorted_releases(ids: Iterable[str]) -> list[str]:
    """Oldest first."""
    return sorted(ids, key=release_sort_key)


def lock_hash(lock_content: bytes | None) -> str:
    """The venv key: first 16 hex of sha256 of the lock file (of b"" when there is none)."""
    return hashlib.sha256(lock_content or b"").hexdigest()[:16]


def current_link_target(release_id: str) -> str:
    """What `current` points at (relative, so the tree can be moved or mounted elsewhere)."""
    return posixpath.join(RELEASES_DIR, check_release_id(release_id))


def venv_link_target(hash_: str) -> str:
    """What `<release>/.venv` points at, relative to the release directory."""
    return posixpath.join("..", "..", VENVS_DIR, hash_)


def shared_link_target(name: str) -> str:
    """What `<release>/<name>` points at, relative to the link's own directory."""
    norm = posixpath.normpath(name)
    depth = norm.count("/")  # a nested entry (var/log) sits deeper in the release
    return posixpath.join(*([".."] * (depth + 2)), SHARED_DIR, norm)


def release_id_from_link(target: str) -> str | None:
    """The release id `current` points at, or None for anything that is not `releases/<id>`."""
    norm = posixpath.normpath(target)
    head, name = posixpath.split(norm)
    if posixpath.basename(head) != RELEASES_DIR or not is_release_id(name):
        return None
    return name


def integrity_excludes(shared: Iterable[str]) -> tuple[str, ...]:
    """Paths in a release left out of the manifest comparison: managed names, shared links."""
    return (*RELEASE_MANAGED, *(posixpath.normpath(s) for s in shared))


def is_excluded(path: str, excludes: Iterable[str]) -> bool:
    """True when `path` is an excluded entry or lies under one."""
    return any(path == e or path.startswith(e + "/") for e in excludes)


def excluder(excludes: Iterable[str]) -> Callable[[str], bool]:
    """`is_excluded` with `excludes` fixed, for many paths: a set lookup and one prefix test in
    C per path (a deploy checks every path of a 10,000-file tree several times)."""
    exact = frozenset(excludes)
    under = tuple(e + "/" for e in exact)
    return lambda path: path in exact or path.startswith(under)


def is_bytecode_cache(path: str) -> bool:
    """True for `.../__pycache__/*.pyc|.pyo`: written by the running service itself, so an
    extra one in a release is not tampering (the audit's integrity layer uses the same rule)."""
    parts = path.split("/")
    return "__pycache__" in parts[:-1] and parts[-1].endswith((".pyc", ".pyo"))
