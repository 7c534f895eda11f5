"""Secrets are scanned in every changed byte of every file: binary or text, skipped by triage
or not — ignored, vendored, generated, `-diff`, too large, an image — in long lines and in file
names (docs/security.md, §6.11).

Each case is a pull request on a real repository that hides a freshly made secret somewhere,
reviewed by the real `gatebot review` against the loopback Gemini: the file must carry a
critical secret finding, the gate must fail, the secret's value must not appear in any output,
and nothing outside the cache and output directories may change.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.review import secretfilter, secretscan
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder
from tests.security.gate import Gate
from tests.security.strategies import fuzz_settings

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + b"IEND\xaeB`\x82"


def aws_key() -> str:
    """A fresh key id in AWS's format (never a committed one: scanners would flag it)."""
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


@dataclass(frozen=True)
class Case:
    head: dict[str, bytes]  # {path: content} with @KEY@ where the secret goes
    path: str
    config: str = ""
    base: dict[str, bytes] | None = None
    modes: dict[str, int] | None = None


WIDE = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")

CASES: dict[str, Case] = {
    **{
        f"{codec.upper()} at the end of an image (skipped as inert)": Case(
            {"img/wide.png": PNG + "aws=@KEY@".encode(codec)}, "img/wide.png"
        )
        for codec in WIDE
    },
    "appended to an image (skipped as inert)": Case(
        {"img/logo.png": PNG + b"tEXt\x00aws=@KEY@\x00"}, "img/logo.png"
    ),
    "UTF-16 inside an unknown binary (not reviewed)": Case(
        {"bin/tool.dat": b"\x00\x01\x02" + "key=@KEY@".encode("utf-16-le") + b"\x00" * 64},
        "bin/tool.dat",
    ),
    "in a path the base config ignores": Case(
        {"docs/setup.md": b"export AWS_ACCESS_KEY_ID=@KEY@\n"},
        "docs/setup.md",
        config="review:\n  ignore: ['docs/**']\n",
    ),
    "in a file the base .gitattributes marks -diff": Case(
        {"data/fixture.dat": b"id=@KEY@\n"},
        "data/fixture.dat",
        base={".gitattributes": b"*.dat -diff\n"},
    ),
    "in a vendored file the base declares": Case(
        {"third_party/lib/conf.js": b"var k = '@KEY@';\n"},
        "third_party/lib/conf.js",
        base={".gitattributes": b"third_party/** linguist-vendored\n"},
    ),
    "in a file over max_file_bytes": Case(
        {"data/dump.txt": b"x = 1\n" * 400 + b"aws_key = '@KEY@'\n"},
        "data/dump.txt",
        config="review:\n  max_file_bytes: 1000\n",
    ),
    "in a 10,000-character minified line": Case(
        {"web/app.min.js": b"var a=" + b"1+" * 2500 + b"'@KEY@'+" + b"2+" * 2500 + b"0;\n"},
        "web/app.min.js",
    ),
    "in the file name": Case({"creds/@KEY@.txt": b"see the name\n"}, "creds/@KEY@.txt"),
    "in a reformatted Python file (skipped as formatting-only)": Case(
        {"src/conf.py": b"KEY = '@KEY@'\n"},
        "src/conf.py",
        base={"src/conf.py": b"KEY='@KEY@'\n"},
    ),
}


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_secret_is_found_wherever_it_hides(tmp_path: Path, gemini: FakeGemini, name: str) -> None:
    case = CASES[name]
    key = aws_key()

    def fill(files: dict[str, bytes]) -> dict[str, str | bytes | None]:
        def put(c: bytes) -> bytes:
            for codec in ("utf-8", *WIDE):
                c = c.replace("@KEY@".encode(codec), key.encode(codec))
            return c

        return {p.replace("@KEY@", key): put(c) for p, c in files.items()}

    rb = RepoBuilder(tmp_path / "repo")
    base_files: dict[str, str | bytes | None] = {"README.md": "# app\n", **fill(case.base or {})}
    if case.config:
        base_files[".github/gatebot.yml"] = case.config
    base = rb.commit(base_files)
    head = rb.commit(fill(case.head), branch="feature", parents=[base], modes=case.modes)
    run = Gate(tmp_path, gemini).review(base, head)
    assert run.outside == [], run.outside
    path = case.path.replace("@KEY@", key)
    found = run.findings(path, "secret")
    assert any(f["severity"] == "critical" for f in found), run.file(path)
    assert run.verdict["verdict"] == "fail" and run.code == 1
    if "@KEY@" not in case.path:  # a file's name is shown wherever the file is named
        outputs = b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir())
        assert key.encode() not in outputs


def test_a_secret_already_in_the_old_blob_is_not_new(tmp_path: Path, gemini: FakeGemini) -> None:
    key = aws_key().encode()
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({"img/logo.png": PNG + b"tEXt aws=" + key + b"\x00"})
    head = rb.commit(
        {"img/logo.png": PNG + b"tEXt aws=" + key + b"\x00\x01\x02"},
        branch="feature",
        parents=[base],
    )
    run = Gate(tmp_path, gemini).review(base, head)
    assert run.file("img/logo.png")["status"] == "skipped"
    assert run.findings("img/logo.png", "secret") == []
    assert run.verdict["verdict"] == "pass" and run.outside == []


# --- properties ---------------------------------------------------------------------------

# Text shaped like code around secrets: the RE2 prefilter must flag at least every line where
# any detector pattern (Python's re, as detect-secrets runs it) matches.
_PIECES = st.sampled_from(
    [
        "AKIA",
        "ghp_",
        "xoxb-",
        "password",
        "api_key",
        "secret",
        "-----BEGIN RSA PRIVATE KEY-----",
        "glpat-",
        "sk_live_",
        "://user:pw@host",
        "=",
        ":",
        '"',
        "'",
        " ",
        "\t",
        "ſ",
        "K",
        "é",
        "١",
        "\u3000",
    ]
)
_TOKENS = st.text(alphabet=string.ascii_letters + string.digits + "_-+/=.", max_size=48)
_LINES = st.lists(st.one_of(_PIECES, _TOKENS), max_size=12).map("".join)


@fuzz_settings(400)
@given(st.lists(_LINES, min_size=1, max_size=6))
def test_the_prefilter_never_misses_a_line_a_detector_pattern_matches(lines: list[str]) -> None:
    patterns = secretfilter._python_patterns()
    assert patterns is not None
    block = "\n".join(lines)
    candidates = secretfilter.candidate_lines(block)
    for index, line in enumerate(lines):
        for pattern, plugin in patterns:
            if pattern.search(line):
                assert index in candidates, (line, pattern.pattern)
                wanted = candidates[index]
                assert plugin in wanted or wanted & secretfilter.ALL, (line, pattern.pattern)


@fuzz_settings(100)
@given(st.binary(max_size=3 * secretscan._OVERLAP), st.integers(0, 2))
def test_a_key_across_any_window_cut_is_found(padding: bytes, shift: int) -> None:
    key = b"AKIA" + b"Q" * 16
    filler = padding.replace(b"A", b"a") or b"z"
    data = filler * (secretscan.WINDOW_BYTES // len(filler) + 1)
    cut = secretscan.WINDOW_BYTES - 10 + shift * 5
    blob = data[:cut] + b" " + key + b" " + data[cut:]
    hits = secretscan.scan_stream("f", secretscan.chunked(blob, 65536), secretscan.Budget())
    assert any("AWS Access Key" in h.kinds for h in hits)
