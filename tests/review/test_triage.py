"""Triage on real diffs: every skip has a reason; protected paths need a human."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.review import ReviewConfig
from bot.git.diff import diff_changes, open_repo
from bot.review import formatting, triage
from bot.review.types import FileChange
from tests.gitrepo import RepoBuilder


def _change(tmp_path: Path, old: dict, new: dict, **kw) -> dict[str, FileChange]:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit(old)
    head = rb.commit(new, **kw)
    repo = open_repo(rb.path)
    return {c.path: c for c in diff_changes(repo, base, head)}


def _b(text: str | bytes | None) -> bytes | None:
    return text.encode() if isinstance(text, str) else text


def _decide(
    change: FileChange, old: str | bytes | None, new: str | bytes | None, **cfg
) -> triage.Decision:
    rules = triage.Rules.from_config(ReviewConfig(**cfg))
    return triage.triage(change, triage.Contents(_b(old), _b(new)), rules)


def test_well_known_paths_are_reviewed_and_lock_files_are_checked(tmp_path: Path) -> None:
    new = {
        "package-lock.json": "{}\n",
        "sub/poetry.lock": "x\n",
        "go.sum": "x\n",
        "vendor/lib/a.go": "package a\n",
        "node_modules/x/i.js": "1\n",
        "web/app.min.js": "1\n",
        "proto/m_pb2.py": "x = 1\n",
        "dist/out.js": "1\n",
        "src/app.py": "x = 1\n",
    }
    ch = _change(tmp_path, {"README": "r\n"}, new)
    decisions = {p: _decide(c, None, new[p]) for p, c in ch.items()}
    for lock in ("package-lock.json", "sub/poetry.lock", "go.sum"):
        assert decisions[lock].skip_reason == "lock file (package sources unchanged)", lock
    # A PR picks its own file names: a well-known vendored or generated path is no skip.
    for path in ("vendor/lib/a.go", "node_modules/x/i.js", "web/app.min.js", "dist/out.js"):
        assert decisions[path].skip_reason is None, path
        assert decisions[path].note == "well-known generated/vendored path (reviewed)"
    assert decisions["src/app.py"].skip_reason is None and decisions["src/app.py"].note is None


def test_deleted_binary_ignored(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00"
    ch = _change(
        tmp_path,
        {"gone.py": "x = 1\n", "img.png": png, "blob.bin": b"\x00\x01", "docs/a.md": "a\n"},
        {"gone.py": None, "img.png": png + b"\x01", "blob.bin": b"\x00\x02", "docs/a.md": "b\n"},
    )
    assert _decide(ch["gone.py"], "x = 1\n", None).skip_reason == "deleted"
    image = _decide(ch["img.png"], png, png + b"\x01")
    assert image.skip_reason == "binary (PNG image)" and image.not_reviewed is None
    blob = _decide(ch["blob.bin"], b"\x00\x01", b"\x00\x02")
    assert blob.not_reviewed is not None and blob.not_reviewed.cause == "content"
    assert blob.not_reviewed.reason.startswith("binary content")
    assert _decide(ch["gone.py"], "x = 1\n", None).not_reviewed is None
    assert _decide(ch["docs/a.md"], "a\n", "b\n", ignore=["docs/**"]).skip_reason == (
        "ignored by review.ignore"
    )
    assert _decide(ch["docs/a.md"], "a\n", "b\n").skip_reason is None


def test_base_gitattributes_flags_win(tmp_path: Path) -> None:
    ch = _change(tmp_path, {"a": "1\n"}, {"gen/schema.py": "x = 1\n"})
    rules = triage.Rules.from_config(ReviewConfig())
    c = ch["gen/schema.py"]
    contents = triage.Contents(None, b"x = 1\n")
    gen = triage.triage(c, contents, rules, triage.Attributes(generated=True))
    ven = triage.triage(c, contents, rules, triage.Attributes(vendored=True))
    nodiff = triage.triage(c, contents, rules, triage.Attributes(diff_disabled=True))
    assert gen.skip_reason == "generated (linguist-generated in the base .gitattributes)"
    assert ven.skip_reason == "vendored (linguist-vendored in the base .gitattributes)"
    assert nodiff.skip_reason == "binary (-diff in the base .gitattributes)"


@pytest.mark.parametrize(
    ("path", "old", "new", "skipped"),
    [
        ("f.py", "def f(a,b):\n  return a+b # s\n", "def f(a, b):\n    return a + b  # s\n", True),
        ("f.py", "def f(a,b):\n  return a+b\n", "def f(a, b):\n    return a + b  # sum\n", False),
        ("f.py", "x = f()\n", "x = f()  # nosemgrep\n", False),  # any comment: a tool may read it
        ("f.py", "#///script\n#///\nx=1\n", "# /// script\n# ///\nx=1\n", False),  # PEP 723
        ("f.py", "def f(a, b):\n    return a + b\n", "def f(a, b):\n    return a - b\n", False),
        ("f.py", "x = 1\n", "x = (\n", False),  # a syntax error is never "formatting"
        ("f.py", "x = 1\n", "x = 1.0\n", False),
        ("f.py", "x = f()\n", "x = f()  # type: ignore\n", False),  # a tool's directive
        ("f.py", "x = f()\n", "x = f()  # nosec B602\n", False),
        ("f.py", "# -*- coding: utf-8 -*-\nx = 1\n", "# -*- coding: utf-7 -*-\nx = 1\n", False),
        ("f.py", "x = 1\n", "\ufeffx = 1\n", False),  # a BOM appears
        ("f.py", "#!/usr/bin/python2\nx = 1\n", "#!/usr/bin/python3\nx = 1\n", False),
        ("f.py", "#!/bin/sh\nx = 1\n", "#!/bin/sh\nx  =  1\n", False),  # shell, not Python
        ("tool", "#!/usr/bin/env python3\nx=1\n", "#!/usr/bin/env python3\nx = 1\n", True),
        ("f.js", "a(b,c);\n", "a(b,  c);\n\n", False),  # JavaScript: unknown whitespace rules
        ("run.sh", "rm -rf /opt/app/cache\n", "rm -rf /opt/app /cache\n", False),
        ("d.json", '{"a": [1, 2]}\n', '{\n  "a": [1,2]\n}\n', True),
        ("d.json", '{"a": "x y"}\n', '{"a": "x  y"}\n', False),
        ("d.json", '{"a": 1}\n', '{"a": 1.0}\n', False),
        ("c.yml", "a:\n  b: 1\n", "a:\r\n  b: 1\r\n", True),
        ("c.yml", "a:\n  b: 1\n", "a:\n  b: 1   \n\n", False),
        ("c.yml", "a:\n  b: 1\n", "a:\nb: 1\n", False),  # indentation is meaning in YAML
        ("Makefile", "a:\n\techo\n", "a:\n        echo\n", False),
    ],
)
def test_formatting_only(path: str, old: str, new: str, skipped: bool, tmp_path: Path) -> None:
    ch = _change(tmp_path, {path: old}, {path: new})
    reason = _decide(ch[path], old, new).skip_reason
    assert (reason is not None and reason.startswith("formatting-only")) is skipped


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"x = 1\n", b"x = 1 \x00\n"),  # a NUL byte
        (b"x = 'a'\n", b"x = '\xe9'\n"),  # not UTF-8
        (b"# coding: latin-1\nx = 1\n", b"# coding: latin-1\nx =  1\n"),
    ],
)
def test_undecodable_or_other_encoding_is_never_formatting_only(old: bytes, new: bytes) -> None:
    assert formatting.formatting_only("f.py", old, new) is None


def test_rename_without_change_and_mode_changes(tmp_path: Path) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(20))
    ch = _change(
        tmp_path,
        {"a/old.py": body, "run.sh": "echo\n", "tool.sh": "echo\n", "notes.txt": body},
        {
            "a/old.py": None,
            "b/new.py": body,
            "run.sh": "echo\n",
            "tool.sh": "echo\n",
            "notes.txt": None,
            "notes.py": body,
        },
        modes={"run.sh": 0o100755},
    )
    assert _decide(ch["b/new.py"], body, body).skip_reason == "renamed without content change"
    # Data renamed into code is new code: reviewed whole.
    renamed = _decide(ch["notes.py"], body, body)
    assert renamed.skip_reason is None and renamed.whole_file
    # Made executable: a change, reviewed whole.
    exe = _decide(ch["run.sh"], "echo\n", "echo\n")
    assert exe.skip_reason is None and exe.whole_file and exe.note is not None


def test_renamed_out_of_an_ignored_path_is_reviewed(tmp_path: Path) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(20))
    ch = _change(tmp_path, {"docs/x.py": body}, {"docs/x.py": None, "src/x.py": body})
    d = _decide(ch["src/x.py"], body, body, ignore=["docs/**"])
    assert d.skip_reason is None and d.whole_file


def test_symlink_submodule_oversize_lfs(tmp_path: Path) -> None:
    ch = _change(
        tmp_path,
        {"a": "1\n"},
        {"link": "../../etc/passwd", "big.txt": "x" * 2000},
        modes={"link": 0o120000},
    )
    link = _decide(ch["link"], None, "../../etc/passwd")
    assert link.skip_reason is None and link.not_reviewed is None  # reviewed: target is content
    big = _decide(ch["big.txt"], None, "x" * 2000, max_file_bytes=1000)
    assert big.not_reviewed is not None and big.not_reviewed.reason.startswith("too large")
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 9\n"
    ptr = _decide(ch["big.txt"], None, lfs)
    assert ptr.not_reviewed is not None and "LFS" in ptr.not_reviewed.reason


def test_protected_paths_need_a_human_even_when_skipped(tmp_path: Path) -> None:
    ch = _change(
        tmp_path,
        {".github/workflows/ci.yml": "on: push\n", "action.yml": "a\n", "src/x.py": "1\n"},
        {
            ".github/workflows/ci.yml": None,
            "action.yml": "b\n",
            "src/x.py": "2\n",
            ".github/gatebot.yml": "review: {}\n",
        },
    )
    wf = _decide(ch[".github/workflows/ci.yml"], "on: push\n", None)
    assert wf.skip_reason == "deleted" and wf.needs_human
    assert wf.protected_by == ".github/workflows/**"
    assert _decide(ch["action.yml"], "a\n", "b\n").needs_human
    assert not _decide(ch["src/x.py"], "1\n", "2\n").needs_human
    custom = _decide(ch["src/x.py"], "1\n", "2\n", protected={"paths": ["src/**"]})
    assert custom.needs_human and custom.skip_reason is None
    # The gate's own config stays protected even when a PR empties the list.
    own = _decide(ch[".github/gatebot.yml"], None, "review: {}\n", protected={"paths": []})
    assert own.needs_human


def test_renamed_out_of_a_protected_path_is_protected(tmp_path: Path) -> None:
    body = "".join(f"step{i}: run\n" for i in range(20))
    ch = _change(
        tmp_path,
        {".github/workflows/deploy.yml": body},
        {".github/workflows/deploy.yml": None, "attic/deploy.yml": body + "x: 1\n"},
    )
    c = ch["attic/deploy.yml"]
    assert c.old_path == ".github/workflows/deploy.yml"
    assert _decide(c, body, body + "x: 1\n").needs_human


def test_gitattributes_are_policy_and_always_protected(tmp_path: Path) -> None:
    ch = _change(
        tmp_path,
        {"a": "1\n"},
        {".gitattributes": "* -diff\n", "src/.gitattributes": "*.py linguist-generated\n"},
    )
    for path in (".gitattributes", "src/.gitattributes"):
        d = _decide(ch[path], None, "x\n", protected={"paths": []})
        assert d.needs_human and d.protected_by == ".gitattributes", path


def test_a_file_that_shrank_under_the_limit_is_reviewed_whole(tmp_path: Path) -> None:
    ch = _change(tmp_path, {"data.py": "x = 1\n" * 400}, {"data.py": "x = 2\n"})
    rules = triage.Rules.from_config(ReviewConfig(max_file_bytes=1000))
    shrunk = triage.triage(ch["data.py"], triage.Contents(None, b"x = 2\n", too_large=True), rules)
    assert shrunk.whole_file and shrunk.not_reviewed is None and shrunk.skip_reason is None
    grown = triage.triage(ch["data.py"], triage.Contents(None, None, too_large=True), rules)
    assert grown.not_reviewed is not None
