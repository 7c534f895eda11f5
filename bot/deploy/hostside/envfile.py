"""Host side: the environment file of a release, written from the runner's secrets.

Format: one `NAME='value'` per variable, POSIX shell quoting (a `'` in a value is written
`'\\''`), after a comment line. `set -a; . ./.env; set +a` reads it, and so do systemd's
EnvironmentFile= and python-dotenv for values without a single quote. The file is created
0600 in a 0700 directory, written to a temporary name and renamed into place; it is compared
with the previous release's by name only, so no value ever travels back.

Part of the host program (see protocol.py): standard library only, Python 3.6.
"""

import os
import re
from typing import Dict, List, Optional

from bot.deploy.hostside.fsops import remove
from bot.deploy.hostside.protocol import EnvWritten, WriteEnv

_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


def format_env(entries: Dict[str, str], header: str) -> str:
    lines = ["# " + " ".join(header.split())]
    for name in sorted(entries):
        if not _NAME.fullmatch(name + "="):
            raise ValueError("not an environment variable name: %r" % name)
        lines.append("%s='%s'" % (name, entries[name].replace("'", "'\\''")))
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> Dict[str, str]:
    """The variables of a file in the format above; ValueError for anything else."""
    out: Dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] == "\n":
            i += 1
            continue
        if text[i] == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        m = _NAME.match(text, i)
        if m is None:
            raise ValueError("line %d is not NAME='value'" % (text.count("\n", 0, i) + 1))
        i = m.end()
        parts: List[str] = []
        while i < n and text[i] != "\n":
            if text[i] == "'":
                close = text.find("'", i + 1)
                if close < 0:
                    raise ValueError("an unterminated quote in %s" % m.group(1))
                parts.append(text[i + 1 : close])
                i = close + 1
            elif text.startswith("\\'", i):
                parts.append("'")
                i += 2
            else:
                raise ValueError("%s: a value is written in single quotes" % m.group(1))
        out[m.group(1)] = "".join(parts)
    return out


def load_env_file(path: Optional[str]) -> Dict[str, str]:
    """The variables of the env file at `path`; {} when there is none."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {}
    return parse_env(text)


def write_private(path: str, text: str) -> None:
    """`text` into `path`, 0600, through a temp name renamed into place (fsync'd)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def diff_names(old: Dict[str, str], new: Dict[str, str]) -> EnvWritten:
    return EnvWritten(
        sorted(set(new) - set(old)),
        sorted(set(old) - set(new)),
        sorted(k for k in new if k in old and old[k] != new[k]),
    )


def op_write_env(req: WriteEnv) -> EnvWritten:
    try:
        before = load_env_file(req.previous)
    except ValueError:
        before = {k: "\0" for k in req.entries}  # edited by hand: every name counts as changed
    write_private(req.path, format_env(req.entries, req.header))
    if req.link and req.link_target:
        os.makedirs(os.path.dirname(req.link), exist_ok=True)
        remove(req.link)
        os.symlink(req.link_target, req.link)
    return diff_names(before, req.entries)
