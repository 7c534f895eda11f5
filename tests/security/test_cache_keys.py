"""Cache keys on raw bytes: a change that differs from an already reviewed one in any byte —
whitespace included — is a miss and goes to the model again (docs/security.md, §6.3).

The attack: push a harmless version, let it be reviewed and cached, then push a version whose
only difference is whitespace that changes meaning (a space after a trailing backslash ends a
shell continuation; CRLF line ends break a script; indentation is YAML's structure). With keys
on normalised text the second push reused the first verdict. Each case runs the real
`gatebot review` twice against the loopback Gemini on a real repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.review.keys import cache_key, content_hash
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder
from tests.security.gate import Gate
from tests.security.strategies import fuzz_settings

SCRIPT = "#!/bin/sh\nset -eu\nrm -rf /opt/app/cache/tmp \\\n  /opt/app/cache/old\necho done\n"

# (path, first push, second push, modes of the second push): the pushes differ in whitespace
# (or mode) only, and the difference changes what the file does.
CASES = {
    "space after a trailing backslash": (
        "clean.sh",
        SCRIPT,
        SCRIPT.replace("tmp \\\n", "tmp \\ \n"),
        None,
    ),
    "CRLF line ends in a script": ("clean.sh", SCRIPT, SCRIPT.replace("\n", "\r\n"), None),
    "YAML indentation": (
        "deploy/config.yml",
        "hosts:\n  - inf\nallow_root: false\n",
        "hosts:\n  - inf\n  allow_root: false\n",
        None,
    ),
    "made executable": ("tools/run.txt", SCRIPT, SCRIPT, {"tools/run.txt": 0o100755}),
}


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_meaningful_whitespace_change_is_a_miss(
    tmp_path: Path, gemini: FakeGemini, name: str
) -> None:
    path, first, second, modes = CASES[name]
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({"README.md": "# app\n", path: "#!/bin/sh\necho start\n"})
    one = rb.commit({path: first}, branch="feature", parents=[base])
    gate = Gate(tmp_path, gemini)
    run = gate.review(base, one)
    assert run.file(path)["status"] == "reviewed" and run.outside == []

    gemini.reset_stats()  # a re-run of the same push: answered from the cache
    run = gate.review(base, one)
    assert run.file(path)["status"] == "cached" and gemini.stats.generate_calls == 0

    two = rb.commit({path: second}, branch="feature", parents=[one], modes=modes)
    gemini.reset_stats()
    run = gate.review(base, two)
    assert run.file(path)["status"] == "reviewed", run.file(path)
    assert path in gemini.stats.paths_asked()
    assert run.outside == [], run.outside


_TEXT = st.text(alphabet=" \t\r\n\\ab", max_size=24)


@fuzz_settings(300)
@given(_TEXT, _TEXT)
def test_different_bytes_never_share_a_key(a: str, b: str) -> None:
    def key(text: str) -> str:
        return cache_key(
            path="a.sh",
            old_path=None,
            old_hash=content_hash(b"x"),
            new_hash=content_hash(text.encode()),
            old_mode=0o100644,
            new_mode=0o100644,
            view="diff",
            model="m",
            prompt_version="1",
            rules_hash="r",
            context_lines=3,
        )

    assert (key(a) == key(b)) == (a == b)
