from __future__ import annotations

import warnings

import pathspec
import pytest

from bot.config.load import parse_config
from bot.config.review import ReviewConfig
from bot.config.routing import DEFAULT_LOW_RISK_PATHS, DEFAULT_RISK_PATHS
from bot.errors import ConfigError
from bot.review.route import _Globs, risk_reason, route
from tests.provider.helpers import added_file, edited_file

CODE = [f"value_{i} = compute({i})" for i in range(40)]


def test_plain_code_change_is_standard() -> None:
    assert route(added_file("src/report.py", CODE), None, ReviewConfig()) == (
        "standard",
        "flash",
    )


@pytest.mark.parametrize(
    "path",
    ["src/auth/views.py", "app/login.py", "lib/crypto_utils.py", "deploy/run.sh", "db/001.sql"],
)
def test_risky_paths_go_deep_however_small(path: str) -> None:
    assert route(added_file(path, ["x = 1"]), None, ReviewConfig())[0] == "deep"


@pytest.mark.parametrize(
    "line",
    [
        "subprocess.run(cmd, shell=True)",
        "result = eval(user_input)",
        'cur.execute("SELECT * FROM users WHERE id=" + uid)',
        "lock = threading.Lock()",
        "api_key = os.environ['X']",
        "refund = amount - fee",
        "requests.get(url, verify=False)",
    ],
)
def test_risky_content_goes_deep(line: str) -> None:
    change = edited_file("src/report.py", ["pass"], ["def f():", f"    {line}"])
    tier, model = route(change, None, ReviewConfig())
    assert (tier, model) == ("deep", "pro")
    assert risk_reason(change, None, ReviewConfig()) is not None


def test_a_removed_risky_line_counts_too() -> None:
    change = edited_file("src/report.py", ["check_password(user)"], ["pass"])
    assert route(change, None, ReviewConfig())[0] == "deep"


def test_tiny_low_risk_changes_go_lite() -> None:
    cfg = ReviewConfig()
    assert route(edited_file("src/report.py", ["x = 1"], ["x = 2"]), None, cfg)[0] == "lite"
    docs = added_file("docs/guide.md", [f"Paragraph {i} about the tool." for i in range(300)])
    assert route(docs, None, cfg) == ("lite", "flash-lite")
    tests = added_file("tests/test_report.py", [f"assert f({i}) == {i}" for i in range(80)])
    assert route(tests, None, cfg)[0] == "lite"


def test_huge_docs_change_is_not_lite() -> None:
    docs = added_file("docs/guide.md", [f"Paragraph {i}." for i in range(1000)])
    assert route(docs, None, ReviewConfig())[0] == "standard"


def test_configured_patterns_and_models() -> None:
    cfg = parse_config(
        {
            "review": {
                "models": {"deep": "my-deep-model"},
                "risk": {
                    "extra_paths": ["src/report.py"],
                    "content": [],
                    "deep_min_changed_lines": 100,
                },
            }
        }
    ).review
    assert route(added_file("src/report.py", CODE), None, cfg) == ("deep", "my-deep-model")
    # `content: []` switched the content rules off: a subprocess call alone is not risky now.
    change = added_file("src/other.py", [*CODE, "subprocess.run(cmd)"])
    assert route(change, None, cfg)[0] == "standard"
    big = added_file("src/big.py", [f"x{i} = {i}" for i in range(150)])
    assert route(big, None, cfg)[0] == "deep"


def test_a_bad_risk_regex_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"review\.risk\.extra_content.*regular expression"):
        parse_config({"review": {"risk": {"extra_content": ["(unclosed"]}}})


@pytest.mark.parametrize(
    "globs",
    [DEFAULT_RISK_PATHS, DEFAULT_LOW_RISK_PATHS, ["src/**", "!src/vendor/**"]],
)
def test_combined_globs_match_like_pathspec(globs: list[str]) -> None:
    paths = [
        "src/auth/x.py",
        "a/b/login.py",
        "docs/x.md",
        "README.md",
        "x/tests/test_a.py",
        "src/deploy.sh",
        "a/Dockerfile",
        "db/x.sql",
        "src/m.py",
        "src/vendor/lib.py",
        "CHANGELOG.md",
        "web/a.spec.ts",
    ]
    spec = pathspec.PathSpec.from_lines("gitignore", globs)
    mine = _Globs(tuple(globs))
    assert [mine.match(p) for p in paths] == [spec.match_file(p) for p in paths]


def test_globs_use_pathspecs_current_gitignore_name() -> None:
    # pathspec 1.x deprecates the "gitwildmatch" name with a DeprecationWarning; "gitignore"
    # is the documented spelling with the same (documented gitignore) semantics.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        globs = _Globs(("auth/", "*.sql", "/top.py", "deploy/**"))
    assert [globs.match(p) for p in ("src/auth/x.py", "db/q.sql", "top.py", "deploy/a/b")] == [
        True
    ] * 4
    assert [globs.match(p) for p in ("src/top.py", "authx/y.py", "src/deploy/x")] == [False] * 3
