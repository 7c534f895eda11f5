"""Release manifests and the host's hash listings: nothing may land or point outside a release.

Trees are written object by object with pygit2's odb (git's own tree format), so they can hold
the entries a normal `git add` would refuse ('..', '.', names with '/'), exactly as a hostile
push could. The host's listing is produced by a real program behind the loopback sshd.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pygit2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pygit2.enums import ObjectType

from bot.deploy.integrity import remote_hashes, verify_remote
from bot.deploy.manifest import MODE_FILE, build_manifest, check_link_target
from bot.errors import DeployFailed, TransportError
from bot.ssh import load_credentials, open_session
from tests.fakes.sshd import SshServer
from tests.security.strategies import fuzz_settings

FUZZ = fuzz_settings(200)

Entry = tuple[str, bytes, Any]  # (octal mode, name, blob/tree oid)


class TreeRepo:
    """A bare repository whose trees are written raw, one commit per `commit()` call."""

    def __init__(self, path: Path) -> None:
        self.repo = pygit2.init_repository(str(path), bare=True)
        self.path = path
        self.sig = pygit2.Signature("sec", "sec@example.invalid", 0, 0)

    def blob(self, data: bytes) -> pygit2.Oid:
        return self.repo.create_blob(data)

    def tree(self, entries: list[Entry]) -> pygit2.Oid:
        # git sorts tree entries by name (directories as if they ended in '/').
        def key(e: Entry) -> bytes:
            return e[1] + (b"/" if e[0] == "40000" else b"")

        raw = b"".join(
            e[0].encode() + b" " + e[1] + b"\0" + bytes.fromhex(str(e[2]))
            for e in sorted(entries, key=key)
        )
        return pygit2.Oid(hex=str(self.repo.odb.write(ObjectType.TREE, raw)))

    def link(self, name: str, target: str) -> Entry:
        return ("120000", name.encode(), self.blob(target.encode()))

    def file(self, name: str, data: bytes = b"x\n") -> Entry:
        return ("100644", name.encode(), self.blob(data))

    def dir(self, name: str, entries: list[Entry]) -> Entry:
        return ("40000", name.encode(), self.tree(entries))

    def commit(self, entries: list[Entry]) -> str:
        tree = self.tree(entries)
        oid = self.repo.create_commit("refs/heads/main", self.sig, self.sig, "m", tree, [])
        return str(oid)


@pytest.fixture
def trees(tmp_path: Path) -> TreeRepo:
    return TreeRepo(tmp_path / "repo.git")


# ---- symlink targets: the lexical rule, against an independent resolver -----------------------


def escapes(link_path: str, target: str) -> bool:
    """Walk the link's directory then the target, component by component (no normpath)."""
    if target.startswith("/"):
        return True
    stack = [c for c in link_path.split("/")[:-1] if c]
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return True
            stack.pop()
        else:
            stack.append(comp)
    return False


names = st.sampled_from(["a", "b", "lib", ".hidden", "x y", "é"])
components = st.sampled_from(["..", ".", "", "a", "b", "lib"])


@FUZZ
@given(
    st.lists(names, min_size=1, max_size=5).map("/".join),
    st.lists(components, min_size=1, max_size=8).map("/".join)
    | st.sampled_from(["/etc/passwd", "//x", "/", "..", "../", "a/../../b"]),
)
def test_link_target_is_refused_iff_it_leaves_the_release(link_path: str, target: str) -> None:
    try:
        check_link_target(link_path, target)
    except DeployFailed as exc:
        assert repr(link_path) in str(exc)
        assert escapes(link_path, target) or target == "", f"{link_path} -> {target} refused"
    else:
        assert not escapes(link_path, target), f"{link_path} -> {target!r} accepted"


# ---- whole trees -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b"], ids=repr)
def test_tree_entry_with_a_bad_name_is_refused(trees: TreeRepo, name: str) -> None:
    trees.commit([trees.file("ok.py"), trees.dir("pkg", [trees.file(name)])])
    with pytest.raises(DeployFailed, match="would land outside"):
        build_manifest(trees.path, "main")


def test_unparseable_tree_is_a_deploy_failure(trees: TreeRepo) -> None:
    trees.commit([trees.file("ok.py"), trees.dir("pkg", [trees.file("")])])
    with pytest.raises(DeployFailed):
        build_manifest(trees.path, "main")


@pytest.mark.parametrize(
    ("where", "target"),
    [("evil", "/etc/passwd"), ("pkg/evil", "../../x"), ("pkg/evil", "../pkg/../../x"), ("e", "")],
)
def test_escaping_symlink_is_refused(trees: TreeRepo, where: str, target: str) -> None:
    parts = where.split("/")
    entry = trees.link(parts[-1], target)
    if len(parts) == 2:
        entry = trees.dir(parts[0], [entry])
    trees.commit([trees.file("ok.py"), entry])
    with pytest.raises(DeployFailed, match="points outside the release") as info:
        build_manifest(trees.path, "main")
    assert repr(where) in str(info.value)


def test_links_that_stay_inside_are_kept(trees: TreeRepo) -> None:
    trees.commit(
        [
            trees.file("ok.py"),
            trees.link("top", "ok.py"),
            trees.dir("pkg", [trees.link("up", "../ok.py"), trees.link("self", ".")]),
        ]
    )
    manifest = build_manifest(trees.path, "main")
    links = {e.path: e.link_target for e in manifest if e.is_link}
    assert links == {"top": "ok.py", "pkg/up": "../ok.py", "pkg/self": "."}
    assert manifest.get("ok.py") is not None and manifest.get("ok.py").mode == MODE_FILE  # type: ignore[union-attr]


def test_chained_symlinks_cannot_escape(trees: TreeRepo, tmp_path: Path) -> None:
    trees.commit(
        [
            trees.file("ok.py"),
            trees.dir("a", [trees.dir("b", [trees.link("L", "../..")])]),
            trees.link("esc", "a/b/L/../../../etc"),
        ]
    )
    # Show the escape is real: materialise the links under a release directory and resolve.
    release = tmp_path / "inf" / "releases" / "r1"
    (release / "a" / "b").mkdir(parents=True)
    (release / "a" / "b" / "L").symlink_to("../..")
    (release / "esc").symlink_to("a/b/L/../../../etc")
    assert not (release / "esc").resolve().is_relative_to(release.resolve())
    with pytest.raises(DeployFailed, match="esc"):
        build_manifest(trees.path, "main")


# ---- the host's hash listing (a compromised or broken Inf) ------------------------------------


HOSTILE_LISTINGS = {
    "list": "[]",
    "null": "null",
    "number-entry": '{"a.py": 1}',
    "short-entry": '{"a.py": []}',
    "text-mode": '{"a.py": ["x", "y", 1]}',
    "nested": '{"a.py": [[1], {}, null]}',
    "huge-int": '{"a.py": [1e400, "x", 1]}',
}


def _fake_python(root: Path, listing: str) -> Path:
    """A stand-in for the host's interpreter that prints `listing` whatever it is asked."""
    name = hashlib.sha256(listing.encode()).hexdigest()[:12]
    payload = root / f"listing-{name}.json"
    payload.write_text(listing)
    fake = root / f"fake-python-{name}.sh"
    fake.write_text(f"#!/bin/sh\ncat '{payload}'\n")
    fake.chmod(0o755)
    return fake


def _run_listing(sshd: SshServer, root: Path, listing: str, manifest: Any = None) -> Any:
    """remote_hashes() (or verify_remote() given a manifest) against the loopback sshd."""
    fake = _fake_python(root, listing)
    target = sshd.target(root)
    creds = load_credentials("inf", target, {}, root)

    async def go() -> Any:
        async with open_session("inf", target, creds) as session:
            if manifest is not None:
                return await verify_remote(session, str(root), manifest, python=str(fake))
            return await remote_hashes(session, str(root), python=str(fake))

    return asyncio.run(go())


@pytest.mark.sshd
@pytest.mark.parametrize("listing", list(HOSTILE_LISTINGS.values()), ids=list(HOSTILE_LISTINGS))
def test_malformed_listing_from_the_host_is_a_transport_error(
    sshd: SshServer, tmp_path: Path, listing: str
) -> None:
    with pytest.raises(TransportError, match="listing"):
        _run_listing(sshd, tmp_path, listing)


@pytest.mark.sshd
def test_listing_that_is_not_json_is_a_transport_error(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="not JSON"):
        _run_listing(sshd, tmp_path, "Traceback (most recent call last): boom")


@pytest.mark.sshd
def test_host_claiming_escaping_paths_fails_integrity(
    sshd: SshServer, tmp_path: Path, trees: TreeRepo
) -> None:
    # A lying host may add entries; they must show up as differences, never be trusted.
    blob = trees.blob(b"x\n")
    trees.commit([("100644", b"ok.py", blob)])
    manifest = build_manifest(trees.path, "main")
    entry = [0o100644, str(blob), 2]
    listing = json.dumps({"ok.py": entry, "../../etc/passwd": entry, "/abs": entry})
    result = _run_listing(sshd, tmp_path, listing, manifest)
    assert not result.ok
    assert set(result.extra) == {"../../etc/passwd", "/abs"}
    assert not result.missing and not result.changed
