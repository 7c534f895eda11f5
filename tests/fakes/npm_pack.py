"""GitHub's published API descriptions, fetched once from the npm registry and kept on disk.

The loopback GitHub server (tests/fakes/github.py) checks every request against GitHub's own
REST OpenAPI description and GraphQL schema, and the webhook fixtures are checked against
GitHub's webhook descriptions. Those documents ship as npm packages maintained by Octokit;
CI reaches the npm registry (and nothing else), so the tests fetch them with `npm pack` —
pinned versions, each tarball checked against its pinned sha512 integrity before a byte of
it is used — and keep only the files they read, under a cache directory shared between runs:
$GATEBOT_TEST_CACHE, else ~/.cache/gatebot-tests. Concurrent test processes take a file lock.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NPM_TIMEOUT_S = 600


class PackageUnavailable(RuntimeError):
    """A pinned package could not be fetched or did not match its pin."""


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # npm's dist.integrity: "sha512-<base64>"
    members: tuple[str, ...]  # files kept, relative to the tarball's package/ folder

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def folder(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '__')}-{self.version}"


REST_DESCRIPTION = NpmPackage(
    "@octokit/openapi",
    "23.0.2",
    "sha512-pV8M7L9GY23AybNvTmo2nyjmpmnt6+2sRE/tqr0ZLQcPS4lnw7u5eZGNmwRNkBC3D7gZXbFx5AHzLUVRBXGDhg==",
    ("generated/api.github.com.json", "generated/ghes-3.17.json"),
)
WEBHOOK_DESCRIPTION = NpmPackage(
    "@octokit/openapi-webhooks",
    "12.1.0",
    "sha512-Z5eDsLCUNbx1zHpZb1LNQirADqdMTvWJQ/deahi0ws+tWWnwHXB+Pr4jfmM9OrETS9Y5iW8ZRu1fdbudObhLrg==",
    ("generated/api.github.com.json",),
)
WEBHOOK_EXAMPLES = NpmPackage(
    "@octokit/webhooks-examples",
    "7.6.1",
    "sha512-De6U3XB6O3DtCa7bKgCMzTHdeopqqZ6SNivMYJnK65ierKL1AnNIA0tkRYCRS7lwGT792d+Ps1WbfHlso6MynQ==",
    ("api.github.com/index.json",),
)
GRAPHQL_SCHEMA = NpmPackage(
    "@octokit/graphql-schema",
    "15.26.1",
    "sha512-RFDC2MpRBd4AxSRvUeBIVeBU7ojN/SxDfALUd7iVYOSeEK3gZaqR2MGOysj4Zh2xj2RY5fQAUT+Oqq7hWTraMA==",
    ("schema.json",),
)


def cache_root() -> Path:
    raw = os.environ.get("GATEBOT_TEST_CACHE", "").strip()
    root = Path(raw) if raw else Path.home() / ".cache" / "gatebot-tests"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_integrity(tarball: Path, pinned: str) -> None:
    algo, _, expected = pinned.partition("-")
    digest = hashlib.new(algo)
    with open(tarball, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    got = base64.b64encode(digest.digest()).decode()
    if got != expected:
        raise PackageUnavailable(
            f"{tarball.name}: integrity {algo}-{got} does not match the pinned {pinned}"
        )


def _npm_pack(pkg: NpmPackage, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise PackageUnavailable(
            f"npm is needed to fetch {pkg.spec} (GitHub's API description) for the GitHub fake: "
            "install Node.js and npm (Debian: apt-get install npm)"
        )
    proc = subprocess.run(
        [npm, "pack", pkg.spec, "--json", "--pack-destination", str(workdir)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise PackageUnavailable(f"npm pack {pkg.spec} failed ({proc.returncode}): {tail}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise PackageUnavailable(f"npm pack {pkg.spec}: expected one tarball, found {tarballs}")
    return tarballs[0]


def _extract(tarball: Path, members: tuple[str, ...], dest: Path) -> None:
    wanted = {f"package/{m}": m for m in members}
    with tarfile.open(tarball, "r:gz") as tar:
        for info in tar:
            target = wanted.pop(info.name, None)
            if target is None:
                continue
            if not info.isfile():
                raise PackageUnavailable(f"{tarball.name}: {info.name} is not a regular file")
            source = tar.extractfile(info)
            assert source is not None
            out = dest / target
            out.parent.mkdir(parents=True, exist_ok=True)
            with source, open(out, "wb") as f:
                shutil.copyfileobj(source, f)
    if wanted:
        raise PackageUnavailable(f"{tarball.name}: missing {sorted(wanted)}")


def fetch(pkg: NpmPackage) -> Path:
    """The folder holding `pkg.members`, fetched and verified on first use."""
    root = cache_root()
    dest = root / pkg.folder
    stamp = dest / ".members.json"
    expected = json.dumps({"integrity": pkg.integrity, "members": sorted(pkg.members)})
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == expected:
        return dest
    with _locked(root):
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == expected:
            return dest
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
            work = Path(tmp)
            tarball = _npm_pack(pkg, work)
            _check_integrity(tarball, pkg.integrity)
            staged = work / "staged"
            _extract(tarball, pkg.members, staged)
            (staged / ".members.json").write_text(expected, encoding="utf-8")
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(staged, dest)
    return dest


def member(pkg: NpmPackage, name: str) -> Path:
    assert name in pkg.members, f"{name} is not kept from {pkg.spec}"
    return fetch(pkg) / name
