"""The pure planning step of init: rendered values survive YAML, pins are full shas."""

from __future__ import annotations

import pytest
import yaml

from bot.errors import UsageError
from bot.onboarding.init import DeployTargetSpec, InitOptions, check_config_text, plan_files
from bot.onboarding.pins import parse_action


@pytest.mark.parametrize(
    ("host", "user", "path"),
    [
        ("null", "yes", "/opt/inf"),  # YAML would read these as None and True unquoted
        ("10.0.0.7", "on", "/srv/app: prod"),
        ("inf.internal", "deploy", "/opt/with space/#hash"),
    ],
)
def test_values_round_trip_through_yaml(host: str, user: str, path: str) -> None:
    spec = DeployTargetSpec("inf", host, user, path, 2200)
    config_file = plan_files(InitOptions(target=spec))[0]
    target = check_config_text(config_file.content, "test").deploy.targets["inf"]
    assert (target.host, target.user, target.path, target.port) == (host, user, path, 2200)


def test_default_path_and_user() -> None:
    spec = DeployTargetSpec("gw-2", "gw2.internal")
    target = check_config_text(plan_files(InitOptions(target=spec))[0].content, "t")
    assert target.deploy.targets["gw-2"].path == "/opt/gw-2"
    assert target.deploy.targets["gw-2"].user == "deploy"


def test_every_planned_file_is_yaml() -> None:
    spec = DeployTargetSpec("inf", "inf.internal")
    files = plan_files(InitOptions(target=spec))
    assert [f.path for f in files] == [
        ".github/gatebot.yml",
        ".github/workflows/review.yml",
        ".github/workflows/gatebot-commands.yml",
        ".github/workflows/gatebot-approve.yml",
        ".github/workflows/deploy.yml",
    ]
    for f in files:
        assert isinstance(yaml.safe_load(f.content), dict), f.path
        assert "@@" not in f.content  # no placeholder left behind


@pytest.mark.parametrize(
    "spec", ["gatebot@" + "a" * 40, "OWNER/gatebot", "OWNER/gatebot@main", "OWNER/gatebot@abc123"]
)
def test_action_must_be_owner_repo_at_full_sha(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_action(spec)


def test_action_pin_renders_sha_and_comment() -> None:
    pin = parse_action("acme/gatebot@" + "b" * 40)
    assert pin.uses("action/deploy") == f"acme/gatebot/action/deploy@{'b' * 40} # {'b' * 12}"
