"""`gatebot deploy | rollback | releases | unlock` through the real CLI entry point, in-process
(and once as the `gatebot` process, through the entry point's quick exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
import yaml

from bot.cli.main import main
from bot.deploy import blobsizes
from tests.deploy.conftest import DeployEnv

pytestmark = pytest.mark.sshd


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _config(denv: DeployEnv, **targets: dict[str, object]) -> Path:
    cfg = denv.tmp / "gatebot.yml"
    data = {"deploy": {"targets": targets or {"inf": denv.target_data()}}}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def test_deploy_rollback_releases_with_report_and_summary(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(denv)
    summary = denv.tmp / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    common = ["--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)]
    first_sha = denv.rb.commit({"a.py": "1\n", "requirements.txt": ""})
    code, out, err = _cli(["deploy", *common, "--no-audit"], capsys)
    assert code == 0, err
    denv.rb.commit({"a.py": "2\n"})
    report_file = denv.tmp / "out" / "report.json"
    code, out, err = _cli(["deploy", *common, "--no-audit", "--report", str(report_file)], capsys)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    host = report["hosts"][0]
    assert report["ok"] and host["files_sent"] == 1 and host["status"] == "deployed"
    assert "deploy summary" in out and "files sent" in out
    assert "| inf | deployed |" in summary.read_text()
    code, out, err = _cli(["releases", *common], capsys)
    assert code == 0, err
    assert first_sha[:12] in out and out.count("yes") == 2 and "*" in out
    code, out, err = _cli(["rollback", *common, "--no-audit"], capsys)
    assert code == 0, err
    assert (denv.current / "a.py").read_text() == "1\n"
    # Each run is recorded in the run history beside the review cache.
    history = (denv.tmp / "cache" / "history.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in history]
    assert kinds == ["deploy", "deploy", "rollback"]
    # Private key material never reaches the output.
    key_line = (denv.sshd.client_key).read_text().splitlines()[1]
    assert key_line not in out + err + report_file.read_text()


def test_usage_errors_exit_2_and_name_the_problem(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    cfg = _config(denv)
    denv.rb.commit({"a.py": "1\n"})
    base = ["--config", str(cfg), "--repo", str(denv.rb.path)]
    code, _out, err = _cli(["deploy", "--target", "nope", *base], capsys)
    assert code == 2 and "unknown target 'nope'" in err
    code, _out, err = _cli(["deploy", "--target", "inf", "--ref", "no-such-ref", *base], capsys)
    assert code == 2 and "no-such-ref" in err
    code, _out, err = _cli(["unlock", "--target", "inf", *base], capsys)
    assert code == 2 and "--owner RUN_ID, or --force" in err
    code, _out, err = _cli(["rollback", "--target", "inf", "--to", "../x", *base], capsys)
    assert code == 2 and "not a release id" in err
    bad_cfg = denv.tmp / "bad.yml"
    bad_cfg.write_text(yaml.safe_dump({"deploy": {"targets": {"inf": {"host": "h"}}}}))
    code, _out, err = _cli(
        ["deploy", "--target", "inf", "--config", str(bad_cfg), "--repo", str(denv.rb.path)],
        capsys,
    )
    assert code == 2 and "deploy.targets.inf.user" in err


def test_target_all_deploys_every_target(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    cfg = _config(
        denv,
        one=denv.target_data(path=str(denv.tmp / "h1")),
        two=denv.target_data(path=str(denv.tmp / "h2")),
    )
    denv.rb.commit({"a.py": "1\n"})
    args = ["deploy", "--target", "all", "--config", str(cfg), "--repo", str(denv.rb.path)]
    code, out, err = _cli([*args, "--no-audit"], capsys)
    assert code == 0, err
    assert (denv.tmp / "h1" / "current" / "a.py").exists()
    assert (denv.tmp / "h2" / "current" / "a.py").exists()
    assert "one" in out and "two" in out


def test_symlink_escaping_the_tree_is_refused_before_touching_the_host(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.deploy.manifest import MODE_LINK

    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    cfg = _config(denv)
    denv.rb.commit(
        {"a.py": "1\n", "conf/secrets": "../../../etc/shadow"}, modes={"conf/secrets": MODE_LINK}
    )
    args = ["deploy", "--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)]
    code, _out, err = _cli(args, capsys)
    assert code == 1
    assert "symlink 'conf/secrets' points outside the release" in err
    assert not denv.root.exists()


def test_the_gatebot_process_ends_with_everything_written(denv: DeployEnv) -> None:
    """`python -m bot` goes through the entry point's quick exit (bot/cli/quickexit.py): the
    summary table, job summary, report, run history and exit status are all there."""
    summary, cache = denv.tmp / "summary.md", denv.tmp / "cache"
    env = {**os.environ, "CI": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    env["GATEBOT_CACHE_DIR"] = str(cache)
    ok_cfg = _config(denv)
    bad_cfg = denv.tmp / "bad.yml"
    bad_cfg.write_text(
        yaml.safe_dump({"deploy": {"targets": {"inf": denv.target_data(install="false")}}})
    )

    def gatebot(*args: str, cfg: Path = ok_cfg) -> subprocess.CompletedProcess[str]:
        report = denv.tmp / "report.json"
        report.unlink(missing_ok=True)
        common = ["--target", "inf", "--config", str(cfg), "--repo", str(denv.rb.path)]
        argv = [sys.executable, "-m", "bot", *args, *common, "--no-audit", "--report", str(report)]
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=denv.tmp, timeout=120
        )

    denv.rb.commit({"a.py": "1\n", "requirements.txt": ""})
    res = gatebot("deploy")
    assert res.returncode == 0, res.stderr
    assert "deploy summary" in res.stdout and "| inf | deployed |" in summary.read_text()
    assert json.loads((denv.tmp / "report.json").read_text())["hosts"][0]["status"] == "deployed"
    denv.rb.commit({"a.py": "2\n", "requirements.txt": "# changed\n"})
    res = gatebot("deploy", cfg=bad_cfg)  # the install fails: not switched, status 1
    assert res.returncode == 1, res.stderr
    assert "gatebot: " in res.stderr and "deploy summary" in res.stdout
    failed = json.loads((denv.tmp / "report.json").read_text())
    assert not failed["ok"] and failed["hosts"][0]["error"]
    assert summary.read_text().count("| inf |") == 2
    assert gatebot("deploy").returncode == 0
    res = gatebot("rollback")
    assert res.returncode == 0, res.stderr
    assert (denv.current / "a.py").read_text() == "1\n" and "deploy summary" in res.stdout
    history = [json.loads(line) for line in (cache / "history.jsonl").read_text().splitlines()]
    assert [h["kind"] for h in history] == ["deploy", "deploy", "deploy", "rollback"]
    assert summary.read_text().count("| inf |") == 4


def test_a_wrong_remembered_blob_size_fails_before_going_live_and_is_dropped(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blob sizes kept between deploys (bot/deploy/blobsizes.py) are a cache: one made wrong
    never puts a release live; the deploy names the file and removes it, and the next deploy
    reads the sizes from git."""
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    common = ["--target", "inf", "--config", str(_config(denv)), "--repo", str(denv.rb.path)]
    denv.rb.commit({"a.py": "1\n", "b.py": "kept\n", "requirements.txt": ""})
    assert _cli(["deploy", *common, "--no-audit"], capsys)[0] == 0
    first = denv.live()
    repo = pygit2.Repository(str(denv.rb.path))
    sizes = blobsizes.load(repo.path)
    kept = str(repo.revparse_single("main:b.py").id)
    assert sizes[kept] == 5
    blobsizes.save(repo.path, {**sizes, kept: 6})
    denv.rb.commit({"a.py": "2\n"})
    code, out, err = _cli(["deploy", *common, "--no-audit"], capsys)
    assert code != 0
    assert "blob sizes remembered in" in out + err and "(b.py)" in out + err
    assert denv.live() == first and (denv.current / "a.py").read_text() == "1\n"
    assert not blobsizes.cache_path(repo.path).exists()
    code, out, err = _cli(["deploy", *common, "--no-audit"], capsys)
    assert code == 0, err
    assert (denv.current / "a.py").read_text() == "2\n"
    assert blobsizes.load(repo.path)[kept] == 5


def test_a_lock_file_missing_from_git_fails_and_leaves_no_seeded_release(
    denv: DeployEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed is made while gatebot opens the repository and reads the lock file
    (steps/build.py): when that read fails, the seeded directory is removed again."""
    monkeypatch.setenv("GATEBOT_CACHE_DIR", str(denv.tmp / "cache"))
    common = ["--target", "inf", "--config", str(_config(denv)), "--repo", str(denv.rb.path)]
    denv.rb.commit({"a.py": "1\n", "requirements.txt": "pkg==1\n"})
    assert _cli(["deploy", *common, "--no-audit"], capsys)[0] == 0
    first, before = denv.live(), denv.releases()
    denv.rb.commit({"a.py": "2\n"})
    repo = pygit2.Repository(str(denv.rb.path))
    lock_blob = str(repo.revparse_single("main:requirements.txt").id)
    # Its size is remembered (blobsizes.py), so only reading its content finds it gone.
    (Path(repo.path) / "objects" / lock_blob[:2] / lock_blob[2:]).unlink()
    code, out, err = _cli(["deploy", *common, "--no-audit"], capsys)
    assert code != 0 and f"blob {lock_blob} is missing" in out + err
    assert denv.live() == first and denv.releases() == before
