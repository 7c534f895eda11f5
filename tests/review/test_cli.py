"""`python -m bot review` as a user runs it: a subprocess on a real repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.fakes.gemini import FakeGemini
from tests.gitrepo import RepoBuilder

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "GEMINI_", "GOOGLE_", "GATEBOT_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "review", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo")
    base = rb.commit({"a.py": "x = 1\n"})
    rb.commit({"a.py": "x = 2\n"}, branch="clean", parents=[base])
    rb.commit({"a.py": f"x = 1\nk = '{AWS}'\n"}, branch="leak", parents=[base])
    return rb


def test_no_key_pass_is_local_and_degraded(repo: RepoBuilder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = _run(
        ["--repo", str(repo.path), "--base", "main", "--head", "clean", "--out", str(out)],
        _env(),
        tmp_path,
    )
    assert p.returncode == 0, p.stderr
    v = json.loads((out / "verdict.json").read_text())
    assert (v["verdict"], v["provider"], v["degraded"]) == ("pass", "local", True)
    assert json.loads((out / "metrics.json").read_text())["files_total"] == 1
    assert (out / "summary.md").read_text().startswith("## ✅ gatebot review: **pass**")
    assert "gatebot review: pass" in p.stdout  # the rich table
    assert "reviewed locally because no GEMINI" in (out / "summary.md").read_text()


def test_fail_exits_1_without_echoing_the_secret(repo: RepoBuilder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = _run(
        ["--repo", str(repo.path), "--base", "main", "--head", "leak", "--out", str(out)],
        _env(),
        tmp_path,
    )
    assert p.returncode == 1, p.stderr
    assert "failed the change" in p.stderr
    assert AWS not in p.stdout + p.stderr + (out / "summary.md").read_text()
    assert AWS not in (out / "verdict.json").read_text()


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """In process (faster than a subprocess) for the exit-code matrix."""
    with pytest.raises(SystemExit) as exc:
        main(["review", *args])
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out + captured.err


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default cache dir is relative to the working directory
    return tmp_path


def test_blocking_severity_flag(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only a medium finding (a leftover debugger import); blocks only with --blocking-severity.
    base = repo.tip()
    assert base is not None
    repo.commit({"d.py": "import pdb\n"}, branch="dbg", parents=[base])
    args = ["--repo", str(repo.path), "--base", "main", "--head", "dbg", "--out", "o"]
    assert _main(args, capsys)[0] == 0
    assert _main([*args, "--blocking-severity", "medium"], capsys)[0] == 1


def test_bad_config_key_exits_2_naming_it(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = in_tmp / "gatebot.yml"
    cfg.write_text("review:\n  blocking_severty: high\n")
    code, text = _main(
        [
            "--repo",
            str(repo.path),
            "--base",
            "main",
            "--head",
            "clean",
            "--out",
            "o",
            "--config",
            str(cfg),
        ],
        capsys,
    )
    assert code == 2
    assert "review.blocking_severty" in text and "unknown key" in text


def test_config_at_the_base_is_read(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Committed on main, not checked out: the config comes from the commit, not the disk.
    base = repo.commit({".github/gatebot.yml": "review:\n  blocking_severity: nope\n"})
    repo.commit({"a.py": "x = 3\n"}, branch="next", parents=[base])
    code, text = _main(
        ["--repo", str(repo.path), "--base", "main", "--head", "next", "--out", "o"], capsys
    )
    assert code == 2 and "review.blocking_severity" in text
    assert f".github/gatebot.yml @ base {base[:7]}" in text


def test_usage_errors_exit_2(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _main(["--repo", str(repo.path), "--base", "main", "--out", "o"], capsys)
    assert code == 2 and "--head" in text
    code, text = _main(
        ["--repo", str(repo.path), "--base", "main", "--head", "missing-branch", "--out", "o"],
        capsys,
    )
    assert code == 2 and "missing-branch" in text
    code, text = _main(["--repo", str(in_tmp), "--base", "a", "--head", "b"], capsys)
    assert code == 2 and "not a git repository" in text
    code, text = _main(
        [
            "--repo",
            str(repo.path),
            "--base",
            "main",
            "--head",
            "clean",
            "--blocking-severity",
            "severe",
        ],
        capsys,
    )
    assert code == 2 and "severe" in text


def test_with_gemini_key_uses_the_model_and_the_cache_env(
    repo: RepoBuilder, tmp_path: Path, gemini_server: FakeGemini
) -> None:
    cache = tmp_path / "shared-cache"
    env = _env(
        GEMINI_API_KEY=gemini_server.api_key,
        GOOGLE_GEMINI_BASE_URL=gemini_server.url,
        GATEBOT_CACHE_DIR=str(cache),
    )
    args = [
        "--repo",
        str(repo.path),
        "--base",
        "main",
        "--head",
        "clean",
        "--out",
        str(tmp_path / "o"),
    ]
    p = _run(args, env, tmp_path)
    assert p.returncode == 0, p.stderr
    v = json.loads((tmp_path / "o" / "verdict.json").read_text())
    assert (v["provider"], v["degraded"], v["metrics"]["api_calls"]) == ("gemini", False, 1)
    assert gemini_server.api_key not in p.stdout + p.stderr
    p = _run(args, env, tmp_path)
    v = json.loads((tmp_path / "o" / "verdict.json").read_text())
    assert v["metrics"]["files_cached"] == 1 and v["metrics"]["api_calls"] == 0
    assert gemini_server.stats.generate_calls == 1
    assert cache.is_dir()


def test_config_is_read_from_the_base_not_from_the_prs_head(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # main's config blocks at high (the default, said explicitly); the PR lowers it to critical
    # in its own head, checked out as the working tree, and adds a high finding (a breakpoint).
    repo.commit({".github/gatebot.yml": "review:\n  blocking_severity: high\n"}, branch="main")
    base = repo.tip()
    assert base is not None
    repo.commit(
        {
            ".github/gatebot.yml": "review:\n  blocking_severity: critical\n",
            "b.py": "def f():\n    breakpoint()\n",
        },
        branch="loosen",
        parents=[base],
    )
    repo.checkout("loosen")
    args = ["--repo", str(repo.path), "--base", "main", "--head", "loosen", "--out", "o"]
    code, text = _main(args, capsys)
    assert code == 1, text
    v = json.loads((in_tmp / "o" / "verdict.json").read_text())
    assert (v["verdict"], v["blocking_severity"]) == ("fail", "high")
    assert ".github/gatebot.yml" in v["needs_human"]  # the config change itself needs a human
    summary = (in_tmp / "o" / "summary.md").read_text()
    assert f"| Config | `.github/gatebot.yml @ base {base[:7]}` |" in summary

    # An explicit --config is read as given: here the PR's own file from the working tree.
    code, text = _main([*args, "--config", ".github/gatebot.yml"], capsys)
    assert code == 1, text
    v = json.loads((in_tmp / "o" / "verdict.json").read_text())
    # Not failed by the breakpoint; failed (protected.conclusion defaults to failure) because
    # the protected config file changed.
    assert (v["verdict"], v["blocking_severity"]) == ("fail", "critical")
    assert [r for r in v["reasons"] if "protected" in r] == v["reasons"]
    assert "(--config)" in (in_tmp / "o" / "summary.md").read_text()


def test_no_config_at_the_base_means_defaults_even_if_the_head_has_one(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = repo.tip()
    assert base is not None
    repo.commit(
        {
            ".github/gatebot.yml": "review:\n  blocking_severity: critical\n",
            "b.py": "def f():\n    breakpoint()\n",
        },
        branch="loosen",
        parents=[base],
    )
    repo.checkout("loosen")
    code, text = _main(
        ["--repo", str(repo.path), "--base", "main", "--head", "loosen", "--out", "o"], capsys
    )
    assert code == 1, text
    assert "defaults (no .github/gatebot.yml @ base" in text  # the printed table
    summary = (in_tmp / "o" / "summary.md").read_text()
    assert f"defaults (no .github/gatebot.yml @ base {base[:7]})" in summary


def test_a_bad_config_at_the_base_is_a_config_error_naming_where(
    repo: RepoBuilder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = repo.commit({".github/gatebot.yml": "review: [unclosed\n"}, branch="main")
    repo.commit({"a.py": "x = 3\n"}, branch="next", parents=[base])
    code, text = _main(
        ["--repo", str(repo.path), "--base", "main", "--head", "next", "--out", "o"], capsys
    )
    assert code == 2
    assert f".github/gatebot.yml @ base {base[:7]}" in text and "not valid YAML" in text
