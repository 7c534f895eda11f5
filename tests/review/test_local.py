"""The local reviewer on real diffs."""

from __future__ import annotations

from pathlib import Path

from bot.config.review import ReviewConfig
from bot.git.diff import diff_changes, open_repo
from bot.review import local, secretfilter
from bot.review.types import FileChange
from tests.gitrepo import RepoBuilder

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"


def _change(tmp_path: Path, old: dict, new: dict) -> dict[str, FileChange]:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit(old)
    head = rb.commit(new)
    return {c.path: c for c in diff_changes(open_repo(rb.path), base, head)}


def test_secrets_only_on_added_lines_and_never_echoed(tmp_path: Path) -> None:
    old = f"OLD_KEY = '{AWS}'\nx = 1\n"
    new = f"OLD_KEY = '{AWS}'\nx = 2\ntoken = '{AWS[:-1]}Z'\n{PEM}\npassword = 'hunter2hunter2'\n"
    c = _change(tmp_path, {"s.py": old}, {"s.py": new})["s.py"]
    found = local.check_secrets(c)
    by_line = {f.line: f for f in found}
    assert set(by_line) == {3, 4, 5}  # line 1 was already there: not this PR's doing
    assert by_line[3].severity == "critical" and "AWS" in by_line[3].message
    assert by_line[4].severity == "critical" and "private key" in by_line[4].message
    assert by_line[5].severity == "medium"
    assert all(AWS[:8] not in f.message and "hunter2" not in f.message for f in found)
    assert all(f.in_diff and f.source == "local" for f in found)


def test_conflict_markers(tmp_path: Path) -> None:
    new = "a = 1\n<<<<<<< HEAD\nb = 1\n=======\nb = 2\n>>>>>>> feature\n"
    c = _change(
        tmp_path, {"m.py": "a = 1\n", "doc.rst": "T\n"}, {"m.py": new, "doc.rst": "T\n=======\n"}
    )
    lines = [f.line for f in local.check_conflict_markers(c["m.py"])]
    assert lines == [2, 4, 6]
    assert local.check_conflict_markers(c["doc.rst"]) == []  # an rst underline is not a marker


def test_python_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    new = "def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    c = _change(tmp_path, {"x.txt": "1\n"}, {"b.py": new, "n.txt": "def (:\n"})
    [f] = local.check_python_syntax(c["b.py"], new)
    assert f.line == 4 and f.severity == "high" and f.in_diff
    assert local.check_python_syntax(c["n.txt"], "def (:\n") == []
    assert local.check_python_syntax(c["b.py"], "x = 1\n") == []


def test_debugger_leftovers(tmp_path: Path) -> None:
    new = (
        "import pdb\n"
        "def f():\n"
        "    breakpoint()\n"
        "    pdb.set_trace()\n"
        "    x = 'breakpoint() in a string is still flagged'\n"
        "    # breakpoint() in a comment is not\n"
        "    obj.breakpoint()\n"
    )
    c = _change(tmp_path, {"x.txt": "1\n"}, {"d.py": new})["d.py"]
    got = {(f.line, f.severity) for f in local.check_debugger(c)}
    assert got == {(1, "medium"), (3, "high"), (4, "high"), (5, "high")}


def test_large_added_file(tmp_path: Path) -> None:
    big = "".join(f"row {i}\n" for i in range(60))
    c = _change(tmp_path, {"x.txt": "1\n"}, {"big.csv": big, "small.csv": "a\n"})
    cfg = ReviewConfig(large_file_lines=50)
    [f] = local.check_large_file(c["big.csv"], big, cfg)
    assert f.line is None and not f.in_diff and "61 lines" in f.message
    assert local.check_large_file(c["small.csv"], "a\n", cfg) == []


def test_switches_turn_checks_off(tmp_path: Path) -> None:
    new = f"key = '{AWS}'\nbreakpoint()\n"
    c = _change(tmp_path, {"x.txt": "1\n"}, {"k.py": new})["k.py"]
    assert {f.category for f in local.review_file(c, new, ReviewConfig())} == {
        "secret",
        "debugging",
    }
    off = ReviewConfig(local={"secrets": False, "debugger": False})
    assert local.review_file(c, new, off) == []


def test_every_detector_kind_is_found_among_benign_lines(tmp_path: Path) -> None:
    # The per-file prefilter must never hide a secret the per-line detectors would find,
    # including patterns anchored at the start of a line.
    secrets = [
        f"aws = '{AWS}'",
        "gh = 'ghp_" + "a1B2c3D4" * 4 + "abcd'",
        "AKC" + "abcdefghij1234567890",
        "slack = 'xoxb-" + "123456789012-abcdefghijklmnop'",
        PEM,
        "db_password = 'correct-horse-battery'",
    ]
    benign = [f"value_{i} = compute({i})" for i in range(50)]
    lines = benign[:10] + secrets[:3] + benign[10:30] + secrets[3:] + benign[30:]
    new = "\n".join(lines) + "\n"
    c = _change(tmp_path, {"x.txt": "1\n"}, {"conf.py": new})["conf.py"]
    found = {f.line for f in local.check_secrets(c)}
    expected = {lines.index(s) + 1 for s in secrets}
    assert found == expected
    clean = _change(tmp_path / "2", {"x.txt": "1\n"}, {"ok.py": "\n".join(benign) + "\n"})
    assert local.check_secrets(clean["ok.py"]) == []


def test_the_re2_prefilter_matches_where_any_detector_pattern_does() -> None:
    patterns = secretfilter._python_patterns()
    assert patterns is not None and secretfilter._prefilter().fast is not None
    samples = [
        "key = '" + "AKIA" + "IOSFODNN7EXAMPLE'",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        'password = "hunter2hunter2"',
        "token: " + "ghp_" + "a" * 36,
        "xoxb-" + "1234567890-abcdefghij",
        "def f(x):\n    return x + 1",
        "",
        "SECRET_KEY=abc",
        "glpat-" + "a" * 30 + " x",
    ]
    for text in samples:
        lines = text.split("\n")
        expected = {i for i, line in enumerate(lines) if any(p.search(line) for p, _ in patterns)}
        assert expected <= set(secretfilter.candidate_lines(text)), text
    assert sum(bool(secretfilter.candidate_lines(t)) for t in samples) >= 5
