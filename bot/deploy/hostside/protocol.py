"""The host agent's protocol: the operations, their typed requests and answers, and the names
both sides agree on. Defined once, used by both sides:

- the runner imports this module (bot/deploy/host/ssh.py sends the requests and validates the
  answers against these types; bot/deploy/host/memory.py answers them in memory);
- the host program is this module followed by the other modules of bot/deploy/hostside/,
  bundled into one source text (bot/deploy/hostside/bundle.py) and run by the host's python.

So: standard library only, and nothing newer than Python 3.6 (checked by tests/deploy/
test_hostside.py with vermin, mypy and a 3.6 parse).

Wire: the client writes one JSON line `{"op": NAME, "args": REQUEST}`; the host answers one line
`ok <ANSWER as JSON>` or `error <message as JSON>`. The first line the host prints is
`hello {"python": VERSION}`. A long request (`command`, `wait_healthy`) may send lines
`out <JSON string>` before its answer: output as it comes. `extract` is followed by its
upload stream in frames (4-byte big endian length, then the bytes; a zero length ends the
stream) on the same channel.
"""

import hashlib
import struct
import sys
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

# ---- names under a target's path (bot/deploy/layout.py builds the paths from them) ------------
RELEASES_DIR = "releases"
CURRENT_LINK = "current"
SHARED_DIR = "shared"
VENVS_DIR = "venvs"
STATE_DIR = ".gatebot"
LOCK_DIR = STATE_DIR + "/lock"
LOCK_OWNER_FILE = "owner.json"
DEPLOY_LOG = STATE_DIR + "/deploy.jsonl"
#: A release's completion marker, written last: present = the release is complete.
RELEASE_MARKER = ".gatebot-release.json"
#: The host's cache of a release's blob ids by inode state (see hostside/tree.py).
RELEASE_INDEX = ".gatebot-index.json"
VENV_LINK = ".venv"
VENV_COMPLETE = ".gatebot-complete"
#: releases/.next-<live release>: the next release's seed, prepared ahead (hostside/seed.py).
STANDBY_PREFIX = ".next-"
#: <dir>/.gatebot-gone-<name>.<nonce>: a directory retention set aside, deleted in the
#: background (hostside/fsops.py); never listed as a release or a venv.
TRASH_PREFIX = ".gatebot-gone-"
#: <release>.env: the environment file of each release (0600, in a 0700 directory).
ENV_DIR = STATE_DIR + "/env"
#: <release>.json / <release>.log: the process a health-gated deploy started for a release.
RUN_DIR = STATE_DIR + "/run"
#: Output lines a command streams back: each cut to this many characters, at most this many bytes.
OUTPUT_LINE_MAX = 2000
OUTPUT_STREAM_MAX = 1 << 20

# ---- the upload stream (bot/deploy/stream.py writes it, hostside/upload.py reads it) --------
#: One record: kind (F file, L symlink, D deletions, E end), mode, payload size, path length;
#: then the path and the payload.
RECORD = struct.Struct(">cIQH")
#: The frame that ends a stream on the agent channel.
FRAME_END = b"\0\0\0\0"

#: {path: (git mode, blob id, size)}; mode 0 = not a regular file or symlink.
Listing = Dict[str, Tuple[int, str, int]]


def blob_id(data: bytes) -> str:
    """git's blob id of bytes (sha1 over `blob <size>\\0` + data): an id, not security."""
    h = sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def sha1(data: bytes) -> Any:
    if sys.version_info >= (3, 9):
        return hashlib.sha1(data, usedforsecurity=False)  # novermin
    return hashlib.sha1(data)


def excluded(path: str, excl: Iterable[str]) -> bool:
    """True when `path` is an excluded entry or lies under one."""
    for e in excl:
        if path == e or path.startswith(e + "/"):
            return True
    return False


def entry_line(mode: int, oid: str, size: int, path: str) -> str:
    """`<mode octal> <blob id> <size>\\t<path>`: the unit a tree digest is computed over."""
    return "%06o %s %d\t%s" % (mode, oid, size, path)


def lines_digest(lines: Iterable[str]) -> str:
    """sha256 over the sorted lines: equal digests mean equal trees, nothing more or less."""
    text = "\n".join(sorted(lines))  # one encode and one update: 10,000 lines in ~2 ms
    data = (text + "\n").encode("utf-8", "surrogateescape") if text else b""
    return hashlib.sha256(data).hexdigest()


def log_of_releases(text: str, releases: Iterable[str]) -> str:
    """The lines of the deploy log `text` that name one of `releases` (the release directories
    on the host): what a deploy reads of the log (which release went live when, which is bad).
    Lines about releases retention removed stay on the host, unread. The log grows with every
    deploy; sent whole, an answer past one SSH packet (32 KB, ~150 events) waited ~40 ms for
    a delayed TCP acknowledgement on each of the two reads a deploy makes. A line naming a
    release holds it as a JSON string; a longer name that merely contains it is not a match."""
    needles = ['"%s"' % name for name in releases]
    if not needles:
        return ""
    return "".join(line for line in text.splitlines(True) if any(n in line for n in needles))


# ---- operations -------------------------------------------------------------------------------
# One request type and one answer type per operation. Sequences in requests travel as JSON arrays.


class Inspect(NamedTuple):
    """Everything under `root` a deploy decides on, in one round trip."""

    root: str


class InspectAnswer(NamedTuple):
    exists: bool
    current: Optional[str]  # what `current` points at (None: no symlink there)
    current_kind: str  # link | missing | other
    releases: Dict[str, Optional[Dict[str, Any]]]  # release dir -> its marker (None: none)
    venvs: Dict[str, bool]  # lock hash -> complete
    locked: bool
    lock: Optional[Dict[str, Any]]  # the lock's owner record, when readable
    log: str  # the deploy log's lines about these releases (log_of_releases)


class LockAcquire(NamedTuple):
    state: str
    lock: str
    owner: str  # the owner record, JSON


class LockAcquired(NamedTuple):
    held: bool  # True: someone else holds it (nothing changed)
    owner: Optional[Dict[str, Any]] = None
    since: Optional[float] = None
    now: Optional[float] = None


class LockRelease(NamedTuple):
    lock: str
    run_id: str  # "*": whoever holds it


class LockReleased(NamedTuple):
    state: str  # absent | other | released
    owner: Optional[Dict[str, Any]] = None


class Hash(NamedTuple):
    root: str
    excl: List[str]


class HashAnswer(NamedTuple):
    listing: Listing


class VerifyHash(NamedTuple):
    """Hash `root` for a deploy's check, reusing ids known for unchanged inodes."""

    root: str
    excl: List[str]
    trust: List[str]  # index files of other checked releases
    record: bool  # write root's own index afterwards
    written: bool  # reuse the ids of files this agent wrote
    expect: Optional[str]  # a digest: on a match, only the verdict travels back


class Verified(NamedTuple):
    listing: Optional[Listing]  # None when `expect` matched
    match: bool
    hashed: int
    hashed_bytes: int
    reused: int


class Seed(NamedTuple):
    live: Optional[str]
    new: str
    drop: List[str]
    standby: bool


class Seeded(NamedTuple):
    seeded: int
    standby: bool


class PrepareNext(NamedTuple):
    live: str
    drop: List[str]


class Started(NamedTuple):
    started: bool


class Link(NamedTuple):
    path: str
    target: str
    mkdir: Optional[str]


class Done(NamedTuple):
    done: bool


class BuildVenv(NamedTuple):
    python: str
    venv_args: List[str]
    venv_dir: str
    release_dir: str
    install: str
    timeout: float


class StartVenv(NamedTuple):
    """Create `venv_dir` in the background (`python -m venv`); the next `build_venv` of the
    same directory waits for it instead of creating it, then runs the install."""

    python: str
    venv_args: List[str]
    venv_dir: str
    timeout: float


class CommandAnswer(NamedTuple):
    status: int
    output: str


class WriteFile(NamedTuple):
    path: str
    text: str
    fsync: bool


class Append(NamedTuple):
    path: str
    text: str


class Switch(NamedTuple):
    link_target: str
    current: str


class Shell(NamedTuple):
    command: str
    cwd: str
    env: Dict[str, str]
    timeout: float


class Remove(NamedTuple):
    paths: List[str]
    #: Directories are renamed out of the way at once and deleted by a detached process
    #: (retention: deleting a 10,000-file release takes ~0.1 s of the deploy's time on disk).
    background: bool = False


class Extract(NamedTuple):
    """Unpack the upload stream that follows the request into `root`."""

    root: str
    fresh: bool


class Extracted(NamedTuple):
    written: int
    deleted: int


class Command(NamedTuple):
    """A command (a hook, a health check) whose output lines are streamed back as it runs
    (`out` lines, see the module docstring), with the environment file `env_file` loaded."""

    command: str
    cwd: str
    env: Dict[str, str]
    env_file: Optional[str]
    timeout: float


class WriteEnv(NamedTuple):
    """Write `entries` as the environment file `path` (0600) and link `link` to it; compare
    with the file `previous` by name (values never travel back)."""

    path: str
    entries: Dict[str, str]
    header: str
    previous: Optional[str]
    link: Optional[str]
    link_target: Optional[str]


class EnvWritten(NamedTuple):
    added: List[str]
    removed: List[str]
    changed: List[str]


class StartService(NamedTuple):
    """Start `command` in `cwd` as a background process of release `release`, recorded in
    `run_dir`; unless a process of that release is running already."""

    release: str
    cwd: str
    command: str
    env: Dict[str, str]
    env_file: Optional[str]
    run_dir: str
    ports: List[int]
    socket: Optional[str]


class ServiceStarted(NamedTuple):
    pid: int
    port: Optional[int]
    socket: Optional[str]
    already: bool  # it was running: nothing was started


class WaitHealthy(NamedTuple):
    """Check release `release`'s process until healthy or `timeout`. kind: http | tcp |
    command | probe; `target` is the URL/path or command, `{port}` and `{socket}` filled in
    from the release's record; a probe runs `python` with `probe` on stdin and `probe_config`."""

    release: str
    run_dir: str
    kind: str
    target: str
    cwd: str
    env: Dict[str, str]
    env_file: Optional[str]
    python: str
    probe: Optional[str]
    probe_config: Optional[Dict[str, Any]]
    timeout: float
    interval: float


class Health(NamedTuple):
    healthy: bool
    attempts: int
    seconds: float
    detail: str  # "healthy", or what the last check found
    exited: Optional[int]  # the process ended (with this status) before it was healthy
    log: str  # the tail of the process's log when it was not healthy


class StopService(NamedTuple):
    """Stop release `release`'s process: `command` when given, else SIGTERM to the process
    group gatebot started (SIGKILL after `timeout`)."""

    release: str
    run_dir: str
    command: Optional[str]
    cwd: str
    env: Dict[str, str]
    env_file: Optional[str]
    timeout: float


class ServiceStopped(NamedTuple):
    stopped: bool  # something was running and is not any more
    detail: str


class Linger(NamedTuple):
    """Keep a copy of this host program running for `seconds` after its last connection, on a
    loopback port; a connection must answer a challenge keyed by `token` (hex, kept in the
    copy's memory only) before it is served. See linger.py."""

    seconds: float
    token: str


class Lingering(NamedTuple):
    port: int


class Operation(NamedTuple):
    name: str
    request: type
    answer: type
    #: Seconds the client waits for the answer, beyond a request's own `timeout` field.
    wait: float


OPERATIONS = (
    Operation("inspect", Inspect, InspectAnswer, 60),
    Operation("lock_acquire", LockAcquire, LockAcquired, 60),
    Operation("lock_release", LockRelease, LockReleased, 60),
    Operation("hash", Hash, HashAnswer, 300),
    Operation("verify_hash", VerifyHash, Verified, 300),
    Operation("seed", Seed, Seeded, 600),
    Operation("prepare_next", PrepareNext, Started, 30),
    Operation("link", Link, Done, 60),
    Operation("start_venv", StartVenv, Started, 30),
    Operation("build_venv", BuildVenv, CommandAnswer, 120),
    Operation("write_file", WriteFile, Done, 60),
    Operation("append", Append, Done, 60),
    Operation("switch", Switch, Done, 60),
    Operation("shell", Shell, CommandAnswer, 30),
    Operation("remove", Remove, Done, 600),
    Operation("extract", Extract, Extracted, 3600),
    Operation("command", Command, CommandAnswer, 30),
    Operation("write_env", WriteEnv, EnvWritten, 60),
    Operation("start_service", StartService, ServiceStarted, 60),
    Operation("wait_healthy", WaitHealthy, Health, 60),
    Operation("stop_service", StopService, ServiceStopped, 60),
    Operation("linger", Linger, Lingering, 30),
)
#: The first line a lingering host program sends a new connection: this, then a nonce (hex).
CHALLENGE = b"gatebot-agent "
#: Its line once the client answered: this, then its own answer to the client's nonce (hex).
PROOF = b"gatebot-proof "
BY_NAME = {op.name: op for op in OPERATIONS}
