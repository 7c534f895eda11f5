"""The Action's review cache directory: the same actions/cache `path` on every runner, and a
workspace copy that the pull request cannot seed or redirect."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.github.cachedir import prepare_action_cache_dir


def test_the_default_is_spelled_the_same_on_every_runner(tmp_path: Path) -> None:
    one = prepare_action_cache_dir("", tmp_path / "runner-a" / "_work" / "r" / "r")
    two = prepare_action_cache_dir("", tmp_path / "b" / "hostexecutor")
    assert one.path_input == two.path_input == ".gatebot-cache"
    assert one.directory == (tmp_path / "runner-a" / "_work" / "r" / "r" / ".gatebot-cache")
    assert one.directory.is_dir() and one.emptied


def test_what_the_checkout_put_there_is_removed(tmp_path: Path) -> None:
    planted = tmp_path / "ws" / ".gatebot-cache"
    planted.mkdir(parents=True)
    (planted / "cache.db").write_text("forged rows")
    got = prepare_action_cache_dir(".gatebot-cache", tmp_path / "ws")
    assert list(got.directory.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_link_or_file_in_its_place_is_removed_not_followed(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    ws = tmp_path / "ws"
    ws.mkdir()
    if kind == "symlink":
        (ws / ".gatebot-cache").symlink_to(outside)
    else:
        (ws / ".gatebot-cache").write_text("not a directory")
    got = prepare_action_cache_dir("", ws)
    assert got.directory.is_dir() and not got.directory.is_symlink()
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_symlinked_parent_in_the_workspace_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "cache").mkdir(parents=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "ci").symlink_to(outside)
    with pytest.raises(UsageError, match="symbolic link"):
        prepare_action_cache_dir("ci/cache", ws)
    assert (outside / "cache").is_dir()


@pytest.mark.parametrize(
    "raw",
    ["../cache", "a/../../b", "cache/*", "!cache", "~/cache", "a\nb", "{a,b}", ".", "/"],
)
def test_paths_actions_cache_would_read_differently_are_refused(tmp_path: Path, raw: str) -> None:
    with pytest.raises(UsageError, match="cache-dir"):
        prepare_action_cache_dir(raw, tmp_path)


def test_an_operators_directory_outside_the_workspace_is_kept(tmp_path: Path) -> None:
    persistent = tmp_path / "var" / "gatebot-cache"
    persistent.mkdir(parents=True)
    (persistent / "cache.db").write_text("yesterday's reviews")
    got = prepare_action_cache_dir(str(persistent), tmp_path / "ws")
    assert got.path_input == str(persistent) and not got.emptied
    assert (persistent / "cache.db").exists()


def test_an_absolute_path_inside_the_workspace_is_emptied(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "c").mkdir(parents=True)
    (ws / "c" / "x").write_text("x")
    got = prepare_action_cache_dir(str(ws / "c"), ws)
    assert got.emptied and list(got.directory.iterdir()) == []
