"""What a changed file's bytes are, for triage: its language, whether it is a script, whether it
is text the gate can read, and which inert binary format it is.

Pure functions over (path, bytes, mode). The rules are conservative on purpose
(docs/review.md, "Triage"): a skip must be provably harmless, so anything this module cannot
place is "unknown" — never formatting-only, never inert.
"""

from __future__ import annotations

import codecs
import posixpath
import re
from dataclasses import dataclass

EXECUTABLE_MODE = 0o100755
REGULAR_MODE = 0o100644
SYMLINK_MODE = 0o120000
SUBMODULE_MODE = 0o160000

UTF8_BOM = b"\xef\xbb\xbf"
_BOMS = (UTF8_BOM, b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")

# By extension; a shebang wins over the extension (the kernel runs the interpreter it names).
_BY_EXTENSION = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".json": "json",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ksh": "shell",
    ".mk": "make",
    ".hs": "haskell",
}
_BY_NAME = {"Makefile": "make", "GNUmakefile": "make", "makefile": "make"}
_INTERPRETERS = (
    (re.compile(r"python(\d+(\.\d+)?)?$"), "python"),
    (re.compile(r"(ba|da|z|k|mk|a)?sh$"), "shell"),
    (re.compile(r"node(js)?$|deno$|bun$"), "javascript"),
    (re.compile(r"ruby\d*$"), "ruby"),
    (re.compile(r"perl\d*$"), "perl"),
    (re.compile(r"make$"), "make"),
)

# Where the interpreter reads the file's encoding from: PEP 263 (lines 1-2), also the form
# Emacs (`-*- coding: x -*-`) and Vim (`vim: set fileencoding=x :`) modelines take.
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
_UTF8_NAMES = frozenset({"utf_8", "utf-8"})
_LINE_END = re.compile(rb"\r\n|\r|\n")

LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def shebang(data: bytes | None) -> str | None:
    """The interpreter a `#!` line names (its base name; through `env`, the program env runs),
    or None when the file does not start with `#!`."""
    if not data or not data.startswith(b"#!"):
        return None
    first = data[2:256].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = first.split()
    if not words:
        return ""
    program = posixpath.basename(words[0])
    if program == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        program = posixpath.basename(rest[0]) if rest else "env"
    return program


def language(path: str, data: bytes | None) -> str:
    """python, shell, json, yaml, make, … or "unknown". A shebang decides over the extension."""
    program = shebang(data)
    if program is not None:
        for pattern, name in _INTERPRETERS:
            if pattern.match(program):
                return name
        return "unknown"
    base = posixpath.basename(path)
    if base in _BY_NAME:
        return _BY_NAME[base]
    return _BY_EXTENSION.get(posixpath.splitext(base)[1].lower(), "unknown")


def is_script(mode: int, data: bytes | None) -> bool:
    """Something the system can run directly: the executable bit, or a `#!` line."""
    return mode == EXECUTABLE_MODE or shebang(data) is not None


def runs_as_shell(mode: int, data: bytes | None) -> bool:
    """An executable file without a `#!` line (a BOM before it counts as none): execve refuses
    it (ENOEXEC) and sh, bash, make or `subprocess(shell=True)` run it as a shell script,
    whatever its name says (`tool.py`, `conf.json`, `x.yml`)."""
    return mode == EXECUTABLE_MODE and shebang(data) is None


def bom(data: bytes | None) -> bytes:
    if not data:
        return b""
    return next((b for b in sorted(_BOMS, key=len, reverse=True) if data.startswith(b)), b"")


def coding_cookie(data: bytes | None) -> str | None:
    """The encoding declared in the first two lines (PEP 263 and modeline forms), as written."""
    if not data:
        return None
    # Python's lines end at CR LF, LF or a lone CR: a cookie after a CR-only blank line counts.
    for line in _LINE_END.split(data, 2)[:2]:
        m = _CODING.match(line)
        if m:
            return m.group(1).decode("ascii")
    return None


def declares_other_encoding(data: bytes | None) -> bool:
    """A coding cookie that names anything but UTF-8 (an unknown name included)."""
    cookie = coding_cookie(data)
    if cookie is None:
        return False
    try:
        name = codecs.lookup(cookie).name
    except LookupError:
        return True
    return name not in _UTF8_NAMES


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_binary(data: bytes | None) -> bool:
    """A NUL byte anywhere (git looks at the first 8,000 bytes only; the gate reads them all)."""
    return data is not None and b"\0" in data


def is_lfs_pointer(data: bytes | None) -> bool:
    return data is not None and data.startswith(LFS_POINTER) and len(data) < 1024


@dataclass(frozen=True)
class _Format:
    name: str
    extensions: tuple[str, ...]


# Formats that hold data, not code: recognised by their magic number AND a matching extension.
_FORMATS: tuple[tuple[re.Pattern[bytes], _Format], ...] = (
    (re.compile(rb"\x89PNG\r\n\x1a\n"), _Format("PNG image", (".png",))),
    (re.compile(rb"\xff\xd8\xff"), _Format("JPEG image", (".jpg", ".jpeg"))),
    (re.compile(rb"GIF8[79]a"), _Format("GIF image", (".gif",))),
    (re.compile(rb"RIFF....WEBP", re.S), _Format("WebP image", (".webp",))),
    (re.compile(rb"BM"), _Format("BMP image", (".bmp",))),
    (re.compile(rb"\x00\x00[\x01\x02]\x00"), _Format("icon", (".ico", ".cur"))),
    (re.compile(rb"II\*\x00|MM\x00\*"), _Format("TIFF image", (".tif", ".tiff"))),
    (
        re.compile(rb"....ftyp(avif|avis|heic|heix|mif1)", re.S),
        _Format("AVIF/HEIF image", (".avif", ".heic", ".heif")),
    ),
    (re.compile(rb"wOFF"), _Format("WOFF font", (".woff",))),
    (re.compile(rb"wOF2"), _Format("WOFF2 font", (".woff2",))),
    (re.compile(rb"\x00\x01\x00\x00|true"), _Format("TrueType font", (".ttf",))),
    (re.compile(rb"OTTO"), _Format("OpenType font", (".otf",))),
    (re.compile(rb"%PDF-"), _Format("PDF document", (".pdf",))),
    (re.compile(rb"ID3|\xff[\xfb\xf3\xf2]"), _Format("MP3 audio", (".mp3",))),
    (re.compile(rb"OggS"), _Format("Ogg media", (".ogg", ".oga", ".ogv", ".opus"))),
    (re.compile(rb"RIFF....WAVE", re.S), _Format("WAV audio", (".wav",))),
    (re.compile(rb"fLaC"), _Format("FLAC audio", (".flac",))),
    (re.compile(rb"....ftyp", re.S), _Format("MP4 media", (".mp4", ".m4a", ".m4v", ".mov"))),
    (re.compile(rb"\x1a\x45\xdf\xa3"), _Format("Matroska/WebM media", (".webm", ".mkv"))),
)


def inert_format(path: str, data: bytes | None) -> str | None:
    """The name of the data-only format the bytes are in ("PNG image"), or None.

    Both must agree: the magic number at the start and the file's extension. A PNG named
    `tool.py` or a script named `logo.png` is not inert.
    """
    if not data:
        return None
    ext = posixpath.splitext(path)[1].lower()
    for magic, fmt in _FORMATS:
        if ext in fmt.extensions and magic.match(data):
            return fmt.name
    return None
