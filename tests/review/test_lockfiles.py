"""The deterministic lock-file check on the formats teams use: new sources, renamed packages,
weaker hashes are findings; a version bump from the same registry is not."""

from __future__ import annotations

import pytest

from bot.review import lockfiles

NPM = (
    '{"packages": {"node_modules/a": {"version": "1.0.0", "resolved": '
    '"https://registry.npmjs.org/a/-/a-1.0.0.tgz", "integrity": "sha512-' + "A" * 86 + '=="}}}\n'
)
POETRY = (
    '[[package]]\nname = "requests"\nversion = "2.31.0"\n'
    'files = [{file = "requests-2.31.0.tar.gz", hash = "sha256:' + "a" * 64 + '"}]\n'
)
CARGO = (
    '[[package]]\nname = "serde"\nversion = "1.0.0"\n'
    'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
    'checksum = "' + "b" * 64 + '"\n'
)
GOSUM = "github.com/pkg/errors v0.9.1 h1:" + "C" * 43 + "=\n"


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        ("package-lock.json", NPM, NPM.replace("1.0.0", "1.0.1"), []),
        (
            "package-lock.json",
            NPM,
            NPM.replace("https://registry.npmjs.org", "https://npm.evil.example"),
            ["package source not used before: https://npm.evil.example/a"],
        ),
        (
            "package-lock.json",
            NPM,
            NPM.replace("/a/-/a-1.0.0.tgz", "/b/-/b-1.0.0.tgz"),
            ["resolves to another package's tarball ('b')"],
        ),
        ("package-lock.json", NPM, NPM.replace("sha512-", "sha1-"), ["hash algorithm sha1"]),
        ("poetry.lock", POETRY, POETRY.replace("2.31.0", "2.32.0"), []),
        (
            "poetry.lock",
            POETRY,
            POETRY
            + '[package.source]\ntype = "git"\nurl = "https://github.com/someone/requests.git"\n',
            ["https://github.com/someone"],
        ),
        (
            "Cargo.lock",
            CARGO,
            CARGO.replace(
                "registry+https://github.com/rust-lang/crates.io-index",
                "git+https://github.com/evil/serde?rev=1#abc",
            ),
            ["git+https://github.com/evil"],
        ),
        ("go.sum", GOSUM, GOSUM.replace("v0.9.1", "v0.9.2"), []),
        (
            "Gemfile.lock",
            "GEM\n  remote: https://rubygems.org/\n",
            "GIT\n  remote: git@github.com:x/y.git\n",
            ["ssh://github.com/x"],
        ),
    ],
)
def test_lock_file_sources(path: str, old: str, new: str, expected: list[str]) -> None:
    changed = frozenset(range(1, new.count("\n") + 2))
    findings = lockfiles.check(path, old, new, changed)
    assert len(findings) == len(expected), [f.message for f in findings]
    for finding, fragment in zip(findings, expected, strict=True):
        assert fragment in finding.message
        assert finding.severity == "high" and finding.category == "supply-chain"
        assert finding.line is not None and finding.in_diff


def test_a_new_lock_file_may_use_the_public_registries_only() -> None:
    assert lockfiles.check("package-lock.json", None, NPM, frozenset({1})) == []
    other = NPM.replace("https://registry.npmjs.org", "https://mirror.example")
    (finding,) = lockfiles.check("package-lock.json", None, other, frozenset({1}))
    assert "https://mirror.example/a" in finding.message
