"""Triage on real diffs: every skip has a reason; protected paths need a human."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.review import ReviewConfig
from bot.git.diff import diff_changes, open_repo
from bot.review import triage
from bot.review.types import FileChange
from tests.gitrepo import RepoBuilder


def _change(tmp_path: Path, old: dict, new: dict, **kw) -> dict[str, FileChange]:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit(old)
    head = rb.commit(new, **kw)
    repo = open_repo(rb.path)
    return {c.path: c for c in diff_changes(repo, base, head)}


def _decide(change: FileChange, old: str | None, new: str | None, **cfg) -> triage.Decision:
    rules = triage.Rules.from_config(ReviewConfig(**cfg))
    return triage.triage(change, old, new, rules)


def test_lock_files_vendored_generated(tmp_path: Path) -> None:
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
    reasons = {p: _decide(c, None, new[p]).skip_reason for p, c in ch.items()}
    assert reasons["package-lock.json"] == "lock file"
    assert reasons["sub/poetry.lock"] == "lock file"
    assert reasons["go.sum"] == "lock file"
    assert reasons["vendor/lib/a.go"] == "vendored (well-known path)"
    assert reasons["node_modules/x/i.js"] == "vendored (well-known path)"
    assert reasons["web/app.min.js"] == "generated (well-known path)"
    assert reasons["proto/m_pb2.py"] == "generated (well-known path)"
    assert reasons["dist/out.js"] == "generated (well-known path)"
    assert reasons["src/app.py"] is None


def test_deleted_binary_ignored(tmp_path: Path) -> None:
    ch = _change(
        tmp_path,
        {"gone.py": "x = 1\n", "img.png": b"\x89PNG\x00", "docs/a.md": "a\n"},
        {"gone.py": None, "img.png": b"\x89PNG\x00\x01", "docs/a.md": "b\n"},
    )
    assert _decide(ch["gone.py"], "x = 1\n", None).skip_reason == "deleted"
    binary = _decide(ch["img.png"], None, None)
    assert binary.skip_reason == "binary content: the gate cannot read it"
    # Skipped by the model, but not passed: unreadable content is "not reviewed".
    assert binary.not_reviewed is not None and binary.not_reviewed.cause == "content"
    assert _decide(ch["gone.py"], "x = 1\n", None).not_reviewed is None
    assert _decide(ch["docs/a.md"], "a\n", "b\n", ignore=["docs/**"]).skip_reason == (
        "ignored by review.ignore"
    )
    assert _decide(ch["docs/a.md"], "a\n", "b\n").skip_reason is None


def test_gitattributes_flags_win(tmp_path: Path) -> None:
    ch = _change(tmp_path, {"a": "1\n"}, {"gen/schema.py": "x = 1\n"})
    rules = triage.Rules.from_config(ReviewConfig())
    c = ch["gen/schema.py"]
    gen = triage.triage(c, None, "x = 1\n", rules, triage.Attributes(generated=True))
    ven = triage.triage(c, None, "x = 1\n", rules, triage.Attributes(vendored=True))
    assert gen.skip_reason == "generated (linguist-generated)"
    assert ven.skip_reason == "vendored (linguist-vendored)"


@pytest.mark.parametrize(
    ("path", "old", "new", "skipped"),
    [
        ("f.py", "def f(a,b):\n  return a+b\n", "def f(a, b):\n    return a + b  # sum\n", True),
        ("f.py", "def f(a, b):\n    return a + b\n", "def f(a, b):\n    return a - b\n", False),
        ("f.py", "x = 1\n", "x = (\n", False),  # a syntax error is never "formatting"
        ("f.js", "a(b,c);\n", "a(b,  c);\n\n", True),
        ("f.js", "a(b,c);\n", "a(bc);\n", False),
        ("c.yml", "a:\n  b: 1\n", "a:\n  b: 1   \n\n", True),
        ("c.yml", "a:\n  b: 1\n", "a:\nb: 1\n", False),  # indentation is meaning in YAML
    ],
)
def test_formatting_only(path: str, old: str, new: str, skipped: bool, tmp_path: Path) -> None:
    ch = _change(tmp_path, {path: old}, {path: new})
    reason = _decide(ch[path], old, new).skip_reason
    assert (reason is not None and reason.startswith("formatting-only")) is skipped


def test_rename_without_change_and_mode_only(tmp_path: Path) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(20))
    ch = _change(
        tmp_path,
        {"a/old.py": body, "run.sh": "echo\n"},
        {"a/old.py": None, "b/new.py": body, "run.sh": "echo\n"},
        modes={"run.sh": 0o100755},
    )
    assert _decide(ch["b/new.py"], body, body).skip_reason == "renamed without content change"
    assert _decide(ch["run.sh"], "echo\n", "echo\n").skip_reason == "mode change only"


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
