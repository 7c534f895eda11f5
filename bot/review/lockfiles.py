"""The deterministic lock-file check: where packages come from, before and after the change.

A lock file is long, machine-written and skipped by the model, which makes it the place to
slip in a dependency from somewhere else: an npm `resolved` URL pointed at an attacker's
tarball with a matching `integrity`, a git source in place of a registry, a weaker hash. So a
lock file is free only when this check has compared its package sources (docs/review.md,
triage): every URL, VCS source and hash algorithm of the new content must already appear in the
old content (or, for a registry everyone uses, be that registry). Anything new is a finding the
model cannot remove, and the file then goes to the model as well.

Format-agnostic on purpose (npm, yarn, pnpm, bun's text lock, Poetry, uv, PDM, Pipfile, Cargo,
Bundler, Composer, Mix, Pub, NuGet, Nix flakes, Go sums): it reads URLs, scp-style git remotes,
`github:` style shorthands and hash-algorithm prefixes from the text, whatever the syntax.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote

from bot.review.models import Finding

LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lock",
        "bun.lockb",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "pdm.lock",
        "Cargo.lock",
        "go.sum",
        "composer.lock",
        "Gemfile.lock",
        "Podfile.lock",
        "mix.lock",
        "pubspec.lock",
        "packages.lock.json",
        "flake.lock",
        "gradle.lockfile",
        "conda-lock.yml",
    }
)

# Public registries whose every package URL is "the registry": the host alone is the source.
# For any other host the source is the host and the first path segment (an owner on a code
# host, a repository on an artifact server), so a tarball from another GitHub owner is new.
REGISTRIES = frozenset(
    {
        "registry.npmjs.org",
        "registry.yarnpkg.com",
        "pypi.org",
        "files.pythonhosted.org",
        "pypi.python.org",
        "crates.io",
        "static.crates.io",
        "index.crates.io",
        "proxy.golang.org",
        "sum.golang.org",
        "rubygems.org",
        "index.rubygems.org",
        "repo.packagist.org",
        "packagist.org",
        "api.nuget.org",
        "pub.dev",
        "pub.dartlang.org",
        "repo.hex.pm",
        "hex.pm",
        "conda.anaconda.org",
        "repo.anaconda.com",
        "cdn.cocoapods.org",
        "repo.maven.apache.org",
        "repo1.maven.org",
    }
)
# Where a new lock file may point without a finding: its registries, plus the index a Cargo
# lock names for crates.io.
_DEFAULT_SOURCES = frozenset(
    {f"https://{host}" for host in REGISTRIES}
    | {"registry+https://github.com/rust-lang", "sparse+https://index.crates.io"}
)
WEAK_HASHES = frozenset({"md5", "sha1"})

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,30})://([^\s\"'<>()\[\]{},;\\`]+)")
_SCP = re.compile(r"(?<![\w/.])[\w.\-]+@([\w.\-]+):(?!//)([\w.\-]+)/")
_SHORTHAND = re.compile(r"(?<![\w/.:@])(github|gitlab|bitbucket|gist):([\w.\-]+)/")
_HASH = re.compile(
    r"(?<![\w-])(md5|sha1|sha224|sha256|sha384|sha512|sha3-256|sha3-512|blake2b|blake2s|h1)"
    r"[-:=]([A-Za-z0-9+/=_]{16,})",
    re.IGNORECASE,
)


def is_lock_file(path: str) -> bool:
    return posixpath.basename(path) in LOCK_FILES


@dataclass(frozen=True)
class Sources:
    origins: dict[str, int]  # source -> first line it appears on (1-based)
    hashes: dict[str, int]  # hash algorithm -> first line


def _origin(scheme: str, rest: str) -> str:
    authority, _, path = rest.partition("/")
    host = authority.rsplit("@", 1)[-1].lower()
    scheme = scheme.lower()
    if host in REGISTRIES:
        return f"{scheme}://{host}"
    first = path.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{host}/{first}" if first else f"{scheme}://{host}"


# Lock formats that name a source by fields rather than by a URL: a Nix flake.lock input is
# `"type": "github", "owner": "NixOS", "repo": "nixpkgs"` (or `"host"`, `"path"`). Every
# such value is a source, so a swapped owner is a new one, while a bumped `rev` is not.
_FIELD = re.compile(r'"(type|owner|repo|host|path|ref|dir)"\s*:\s*"([^"\\]{0,200})"')


def sources(text: str, fields: bool = True) -> Sources:
    """Every package source and hash algorithm of a lock file's text, with its first line.
    `fields`: also sources named by fields (`_FIELD`)."""
    origins: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if fields and '"' in line:
            for m in _FIELD.finditer(line):
                origins.setdefault(f"{m[1]}={m[2]}", number)
        if "://" in line:
            for m in _URL.finditer(line):
                origins.setdefault(_origin(m[1], m[2]), number)
        if "@" in line:
            for m in _SCP.finditer(line):
                origins.setdefault(f"ssh://{m[1].lower()}/{m[2]}", number)
        if ":" in line:
            for m in _SHORTHAND.finditer(line):
                origins.setdefault(f"{m[1].lower()}:{m[2]}", number)
            for m in _HASH.finditer(line):
                hashes.setdefault(m[1].lower(), number)
        elif "-" in line:
            for m in _HASH.finditer(line):
                hashes.setdefault(m[1].lower(), number)
    return Sources(origins, hashes)


# npm-style registries: a tarball URL names its package (`/<name>/-/<name>-<version>.tgz`).
_NPM_HOSTS = frozenset({"registry.npmjs.org", "registry.yarnpkg.com"})
_NPM_TARBALL = re.compile(r"https?://([^/\s\"']+)/((?:@[^/\s\"']+/)?[^/\s\"'@]+)/-/")


def _url_package(url: str) -> str | None:
    m = _NPM_TARBALL.match(url)
    if not m or m[1].lower() not in _NPM_HOSTS:
        return None
    return unquote(m[2]).lower()


def _npm_entries(text: str) -> list[tuple[str, str]]:
    """(package name, resolved URL) of a package-lock.json / npm-shrinkwrap.json."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    packages = data.get("packages") if isinstance(data, dict) else None
    out: list[tuple[str, str]] = []
    if isinstance(packages, dict):
        for key, entry in packages.items():
            if not isinstance(key, str) or not isinstance(entry, dict):
                continue
            resolved = entry.get("resolved")
            if "node_modules/" not in key or not isinstance(resolved, str):
                continue
            name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
            if isinstance(name, str):
                out.append((name.lower(), resolved))
    return out


_YARN_HEADER = re.compile(r'^"?((?:@[^@/\s"]+/)?[^@\s",]+)@')
_YARN_ALIAS = re.compile(r'@npm:((?:@[^@/\s"]+/)?[^@\s",]+)@')
_YARN_RESOLVED = re.compile(r'^\s+resolved\s+"([^"]+)"')


def _yarn_entries(text: str) -> list[tuple[str, str]]:
    """(package name, resolved URL) of a yarn.lock (v1: `name@range:` blocks)."""
    out: list[tuple[str, str]] = []
    name: str | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            m = _YARN_ALIAS.search(line) or _YARN_HEADER.match(line)
            name = m[1].lower() if m else None
        elif name is not None:
            resolved = _YARN_RESOLVED.match(line)
            if resolved:
                out.append((name, resolved[1]))
    return out


def _renamed_packages(path: str, text: str) -> set[tuple[str, str, str]]:
    """(name, the package its URL names, URL) for entries whose registry tarball is another
    package's: `lodash` resolved to `/evil-lodash/-/…` on the same registry."""
    base = posixpath.basename(path)
    if base in ("package-lock.json", "npm-shrinkwrap.json"):
        entries = _npm_entries(text)
    elif base == "yarn.lock":
        entries = _yarn_entries(text)
    else:
        return set()
    out: set[tuple[str, str, str]] = set()
    for name, url in entries:
        named = _url_package(url)
        if named is not None and named != name:
            out.add((name, named, url))
    return out


def _finding(path: str, line: int, changed: frozenset[int], message: str) -> Finding:
    return Finding(
        path=path,
        line=line,
        end_line=line,
        severity="high",
        category="supply-chain",
        message=message,
        source="local",
        in_diff=line in changed,
    )


def _line_of(text: str, needle: str) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def check(
    path: str, old_text: str | None, new_text: str, changed_lines: frozenset[int]
) -> list[Finding]:
    """Findings for the package sources and hash algorithms that the change brings in."""
    # Field sources need a baseline (`"type": "library"` in a new composer.lock is no news),
    # except in a flake.lock, where they are the only sources there are.
    fields = old_text is not None or posixpath.basename(path) == "flake.lock"
    new = sources(new_text, fields)
    old = sources(old_text) if old_text is not None else Sources({}, {})
    out: list[Finding] = []
    for origin, line in sorted(new.origins.items(), key=lambda kv: kv[1]):
        if origin in old.origins or origin in _DEFAULT_SOURCES:
            continue
        out.append(
            _finding(
                path,
                line,
                changed_lines,
                f"lock file adds a package source not used before: {origin[:120]}; "
                "confirm every package from it is meant to come from there",
            )
        )
    old_renamed = _renamed_packages(path, old_text) if old_text is not None else set()
    for name, named, url in sorted(_renamed_packages(path, new_text) - old_renamed):
        line = _line_of(new_text, url)
        out.append(
            _finding(
                path,
                line,
                changed_lines,
                f"lock file entry {name[:80]!r} resolves to another package's tarball "
                f"({named[:80]!r})",
            )
        )
    for algorithm, line in sorted(new.hashes.items(), key=lambda kv: kv[1]):
        if algorithm in old.hashes:
            continue
        if old_text is None and algorithm not in WEAK_HASHES:
            continue  # a new lock file: only a weak algorithm is worth a word
        out.append(
            _finding(
                path,
                line,
                changed_lines,
                f"lock file uses the hash algorithm {algorithm} where it did not before"
                + (" (a weak hash)" if algorithm in WEAK_HASHES else ""),
            )
        )
    return out
