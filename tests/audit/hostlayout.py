"""Lay out a release on the loopback "host" by hand, exactly as the remote layout doc says.

The layer tests use this instead of a full deploy so each one can break one thing precisely;
the rollback tests use the real deploy flow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.deploy.layout import (
    RELEASE_MARKER,
    VENV_COMPLETE,
    RemoteLayout,
    current_link_target,
    lock_hash,
    make_release_id,
    shared_link_target,
    venv_link_target,
)
from bot.deploy.manifest import MODE_EXEC, MODE_LINK, build_manifest, read_blob
from bot.git.diff import open_repo


def make_venv(venv: Path) -> None:
    # --without-pip keeps it instant; `python -m pip` then comes from the system site-packages.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    (venv / VENV_COMPLETE).write_text("ok\n")


def lay_out_release(
    root: Path,
    repo: Path,
    sha: str,
    *,
    shared: tuple[str, ...] = (),
    lock_file: str | None = "requirements.txt",
    switch: bool = True,
    age_s: int = 0,
) -> str:
    layout = RemoteLayout(str(root))
    manifest = build_manifest(repo, sha)
    git = open_repo(repo)
    releases = Path(layout.releases)
    releases.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    rid = make_release_id(sha, now, {p.name for p in releases.iterdir()})
    rdir = Path(layout.release(rid))
    rdir.mkdir()
    lock_content: bytes | None = None
    # Shared entries replace whatever the tree holds at their path (as the deploy does).
    for entry in manifest.without(tuple(shared)):
        dest = rdir / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = read_blob(git, entry.oid)
        if entry.mode == MODE_LINK:
            dest.symlink_to(data.decode())
            continue
        dest.write_bytes(data)
        dest.chmod(0o755 if entry.mode == MODE_EXEC else 0o644)
        if entry.path == lock_file:
            lock_content = data
    digest = lock_hash(lock_content)
    venv = Path(layout.venv(digest))
    if not venv.exists():
        make_venv(venv)
    (rdir / ".venv").symlink_to(venv_link_target(digest))
    for name in shared:
        Path(layout.shared_entry(name)).mkdir(parents=True, exist_ok=True)
        (rdir / name).symlink_to(shared_link_target(name))
    marker = {
        "release": rid,
        "sha": sha,
        "ref": sha,
        "lock_hash": digest,
        "manifest_digest": manifest.digest,
        "files": len(manifest),
        "created_at": now.isoformat(),
    }
    (rdir / RELEASE_MARKER).write_text(json.dumps(marker))
    if switch:
        point_current(root, rid)
    return rid


def point_current(root: Path, release_id: str) -> None:
    tmp = root / ".current.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(current_link_target(release_id))
    os.replace(tmp, root / "current")


def site_packages(venv: Path) -> Path:
    return (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
