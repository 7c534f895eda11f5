"""Pure parts of deploy: manifests from real pygit2 repos, ids, plans, retention, the log."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pygit2
import pytest

from bot.deploy import log as deploy_log
from bot.deploy.hostside.protocol import blob_id
from bot.deploy.integrity import compare
from bot.deploy.layout import (
    RemoteLayout,
    integrity_excludes,
    lock_hash,
    make_release_id,
    release_id_from_link,
    shared_link_target,
    sorted_releases,
)
from bot.deploy.manifest import (
    MODE_EXEC,
    MODE_LINK,
    build_manifest,
    old_entries_from_diff,
)
from bot.deploy.retention import plan_prune
from bot.deploy.state import ReleaseMarker
from bot.deploy.transfer import plan_transfer
from bot.errors import DeployFailed, UsageError
from tests.gitrepo import RepoBuilder

NOW = datetime(2026, 11, 28, 21, 45, 0, tzinfo=timezone.utc)
SHA = "1a2b3c4d5e6f" + "0" * 28


def test_release_ids_are_utc_time_and_short_sha_and_unique() -> None:
    first = make_release_id(SHA, NOW)
    assert first == "20261128T214500Z-1a2b3c4"
    assert make_release_id(SHA, NOW, {first}) == f"{first}-2"
    assert make_release_id(SHA, NOW, {first, f"{first}-2"}) == f"{first}-3"
    assert sorted_releases([f"{first}-10", f"{first}-2", first]) == [
        first,
        f"{first}-2",
        f"{first}-10",
    ]
    with pytest.raises(ValueError, match="aware"):
        make_release_id(SHA, datetime(2026, 1, 1))


def test_releases_made_in_the_same_second_sort_in_the_order_they_were_made() -> None:
    made: list[str] = []
    # Shas chosen so that their spelling sorts against the order of making.
    for sha in ("f" * 40, "a" * 40, "0" * 40, "9" * 40):
        made.append(make_release_id(sha, NOW, set(made)))
    assert sorted_releases(reversed(made)) == made
    assert made[1] == "20261128T214500Z-aaaaaaa-2"


def test_layout_paths_and_relative_links() -> None:
    lay = RemoteLayout("/opt/inf")
    assert lay.current == "/opt/inf/current"
    assert lay.lock_dir == "/opt/inf/.gatebot/lock"
    assert lay.deploy_log == "/opt/inf/.gatebot/deploy.jsonl"
    assert lay.release("20261128T214500Z-1a2b3c4") == "/opt/inf/releases/20261128T214500Z-1a2b3c4"
    with pytest.raises(ValueError, match="not a release id"):
        lay.release("../../etc")
    assert shared_link_target("logs") == "../../shared/logs"
    assert shared_link_target("var/log") == "../../../shared/var/log"
    assert release_id_from_link("releases/20261128T214500Z-1a2b3c4") == "20261128T214500Z-1a2b3c4"
    assert release_id_from_link("/elsewhere") is None
    assert lock_hash(None) == lock_hash(b"") != lock_hash(b"x==1\n")
    assert len(lock_hash(b"x")) == 16


def test_manifest_modes_links_and_digest(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "r")
    rb.commit(
        {"a.py": "x = 1\n", "bin/run": "#!/bin/sh\n", "docs/l": "../a.py", "img": b"\x00\xff"},
        modes={"bin/run": MODE_EXEC, "docs/l": MODE_LINK},
    )
    m = build_manifest(rb.path, "main")
    assert [e.path for e in m] == ["a.py", "bin/run", "docs/l", "img"]
    assert m.get("bin/run").executable  # type: ignore[union-attr]
    link = m.get("docs/l")
    assert link is not None and link.is_link and link.link_target == "../a.py"
    assert m.get("img").oid == blob_id(b"\x00\xff")  # type: ignore[union-attr]
    again = build_manifest(rb.path, m.sha)
    assert again.digest == m.digest and len(m.digest) == 64


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "a/../../../x"])
def test_symlink_escaping_the_tree_is_refused(tmp_path: Path, target: str) -> None:
    rb = RepoBuilder(tmp_path / "r")
    rb.commit({"ok.txt": "x", "sub/evil": target}, modes={"sub/evil": MODE_LINK})
    with pytest.raises(DeployFailed, match=r"sub/evil"):
        build_manifest(rb.path, "main")


def test_tree_entry_named_dotdot_is_refused(tmp_path: Path) -> None:
    # libgit2 refuses such names, but a hostile repository can still hold the raw object.
    repo = pygit2.init_repository(str(tmp_path / "r"))
    blob = repo.create_blob(b"x")
    raw = b"100644 ..\x00" + bytes.fromhex(str(blob))
    tree = repo.odb.write(pygit2.enums.ObjectType.TREE, raw)
    sig = pygit2.Signature("a", "a@example.invalid", 1, 0)
    repo.create_commit("refs/heads/main", sig, sig, "m", pygit2.Oid(hex=str(tree)), [])
    with pytest.raises(DeployFailed, match=r"'\.\.'"):
        build_manifest(tmp_path / "r", "main")


def test_unknown_ref_and_missing_repo_are_usage_errors(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "r")
    rb.commit({"a": "1"})
    with pytest.raises(UsageError, match="nope"):
        build_manifest(rb.path, "nope")
    with pytest.raises(UsageError, match="not a git repository"):
        build_manifest(tmp_path / "empty", "main")


def test_plan_sends_only_changed_and_mode_changes(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "r")
    base = rb.commit({"a": "1", "b": "2", "c": "3", "run": "#!"})
    head = rb.commit({"a": "1!", "c": None, "d": "3", "run": "#!"}, modes={"run": MODE_EXEC})
    old = {e.path: (e.mode, e.oid) for e in build_manifest(rb.path, base)}
    plan = plan_transfer(build_manifest(rb.path, head), old)
    # "d" has the content of the deleted "c": still sent (a rename is a new path).
    assert sorted(e.path for e in plan.send) == ["a", "d", "run"]
    assert plan.delete == ("c",)
    assert plan.reused_files == 1 and plan.reused_bytes == 1
    first = plan_transfer(build_manifest(rb.path, head), None)
    assert len(first.send) == 4 and first.delete == ()


def test_old_entries_from_a_tree_diff_equal_the_old_manifest(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "r")
    old = rb.commit(
        {
            "a.py": "a\n",
            "bin/run": "#!/bin/sh\n",
            "d/x.txt": "x\n",
            "d/y.txt": "y\n",
            "gone/z.txt": "z\n",
            "link": "a.py",
            "logs/keep.txt": "shared\n",
            "becomes-dir": "file\n",
        },
        modes={"bin/run": MODE_EXEC, "link": MODE_LINK},
    )
    new = rb.commit(
        {
            "a.py": "a2\n",  # content
            "bin/run": "#!/bin/sh\n",  # mode flip below
            "gone/z.txt": None,  # deleted with its directory
            "link": "d/x.txt",  # link target
            "new/file.txt": "n\n",  # added
            "logs/keep.txt": "shared2\n",  # under a shared entry: left out on both sides
            "becomes-dir": None,
            "becomes-dir/inner.txt": "i\n",  # a file became a directory
        },
        modes={"link": MODE_LINK},
    )
    shared = ("logs",)
    new_manifest = build_manifest(rb.path, new).without(shared)
    got = old_entries_from_diff(pygit2.Repository(str(rb.path)), old, new_manifest, shared)
    want = {e.path: (e.mode, e.oid) for e in build_manifest(rb.path, old).without(shared)}
    assert got == want
    plan = plan_transfer(new_manifest, got)
    assert {e.path for e in plan.send} == {
        "a.py",
        "bin/run",
        "link",
        "new/file.txt",
        "becomes-dir/inner.txt",
    }
    assert set(plan.delete) == {"gone/z.txt", "becomes-dir"}
    with pytest.raises(UsageError, match="not in"):
        old_entries_from_diff(pygit2.Repository(str(rb.path)), "0" * 40, new_manifest)


def test_compare_reports_missing_changed_extra_and_honours_excludes(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "r")
    rb.commit({"a": "1", "b": "2", "logs/.keep": ""})
    m = build_manifest(rb.path, "main")
    remote = {
        "a": (0o100644, m.get("a").oid, 1),  # type: ignore[union-attr]
        "b": (0o100755, m.get("b").oid, 1),  # type: ignore[union-attr]
        "z": (0o100644, "0" * 40, 1),
        ".venv": (MODE_LINK, "1" * 40, 10),
    }
    res = compare(m, remote, integrity_excludes(["logs"]))
    assert res.missing == () and res.changed == ("b",) and res.extra == ("z",)
    assert not res.ok and "1 changed (b)" in res.summary()


def _marker(rid: str, lh: str = "h1") -> ReleaseMarker:
    return ReleaseMarker(
        release=rid, sha=SHA, lock_hash=lh, manifest_digest="d", files=1, created_at="now"
    )


def test_retention_keeps_newest_live_and_previous_good() -> None:
    ids = [f"20261128T2145{i:02d}Z-1a2b3c4" for i in range(7)]
    markers: dict[str, ReleaseMarker | None] = {r: _marker(r, f"h{i}") for i, r in enumerate(ids)}
    markers["20261128T214559Z-1a2b3c4"] = None  # a cut deploy's leftover
    plan = plan_prune(
        markers,
        {f"h{i}": True for i in range(7)} | {"stale": False},
        keep=3,
        live=ids[1],  # rolled back far
        previous_good=ids[0],
    )
    assert set(plan.releases) == {ids[2], ids[3], "20261128T214559Z-1a2b3c4"}
    assert set(plan.venvs) == {"h2", "h3", "stale"}


def _ev(event: str, release: str, ok: bool = True) -> deploy_log.LogEvent:
    return deploy_log.make_event(event, release=release, ok=ok)  # type: ignore[arg-type]


def test_previous_good_walks_live_history_and_skips_bad() -> None:
    a, b, c = (f"20261128T21450{i}Z-1a2b3c4" for i in range(3))
    events = [_ev("switch", a), _ev("switch", b), _ev("switch", c), _ev("bad", b, ok=False)]
    assert deploy_log.previous_good(events, c, [a, b, c]) == a
    assert deploy_log.previous_good(events, c, [b, c]) is None
    # No history at all: the newest complete release older than live.
    assert deploy_log.previous_good([], c, [a, b, c]) == b
    events_text = "\n".join(e.model_dump_json() for e in events) + "\n{broken"
    parsed, bad = deploy_log.parse_log(events_text)
    assert len(parsed) == 4 and bad == 1
    assert deploy_log.bad_releases(parsed) == {b}


def test_reporter_bar_plain_lines_and_summary_table() -> None:
    import io

    from rich.console import Console

    from bot.deploy.progress import Reporter, make_reporter, summary_table
    from bot.deploy.report import HostReport

    stream = io.StringIO()
    bar = Reporter(plain=False, stream=stream)
    advance = bar.upload("inf", 1000, 3)
    advance(600)
    advance(400)
    bar.upload_done("inf")
    bar.close()
    assert "[inf] uploading 3 files" in stream.getvalue()
    # Not a terminal, or CI set: plain lines for the log.
    assert make_reporter({"CI": "true"}, io.StringIO()).plain
    assert make_reporter({}, io.StringIO()).plain
    report = HostReport(
        target="inf",
        op="deploy",
        ok=True,
        status="deployed",
        live="20261128T214500Z-1a2b3c4",
        files_sent=1,
        bytes_sent=3072,
        bytes_reused=2048,
        phases={"seed": 0.25, "upload": 0.01, "lock": 0.001},
        duration_s=0.5,
    )
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table([report]))
    text = out.getvalue()
    assert "20261128T214500Z-1a2b3c4" in text and "3.0 KiB" in text and "2.0 KiB" in text
    assert "seed 0.25" in text and "upload 0.01" in text and "lock" not in text


def test_the_host_helper_parses_as_python_3_6() -> None:
    """The helper runs on the host's own interpreter (docs: 3.6+): no newer syntax in it."""
    import ast

    from bot.deploy.hostside.bundle import host_program

    ast.parse(host_program(), feature_version=(3, 6))
    with pytest.raises(SyntaxError):
        ast.parse("if (n := 1):\n    pass\n", feature_version=(3, 6))


def test_plain_progress_is_a_few_lines_and_the_table_plain_text() -> None:
    """In a log (not a terminal, or CI): progress as lines at quarters, never a carriage
    return, and the final table without box drawing."""
    import io

    from bot.deploy.progress import Reporter, print_summary
    from bot.deploy.report import HostReport

    stream = io.StringIO()
    reporter = Reporter(plain=True, stream=stream)
    advance = reporter.upload("inf", 100 << 20, 10_000)
    for _ in range(100):
        advance(1 << 20)
    reporter.upload_done("inf")
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "[inf] uploading 10000 files (100.0 MiB of content)"
    assert [line.split(" (")[0] for line in lines[1:]] == [
        "[inf] uploaded 25.0 MiB of 100.0 MiB",
        "[inf] uploaded 50.0 MiB of 100.0 MiB",
        "[inf] uploaded 75.0 MiB of 100.0 MiB",
    ]
    out = io.StringIO()
    report = HostReport(target="inf", op="deploy", ok=True, status="deployed", duration_s=0.5)
    print_summary([report], out)
    table = out.getvalue()
    assert table.splitlines()[0] == "deploy summary" and "target" in table.splitlines()[1]
    assert not any(ch in table for ch in "┏━│└\r\x1b")
