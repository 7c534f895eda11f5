"""`gatebot init`: plan the files a repository needs (pure), then compare with disk and apply.

Planning renders the packaged templates into `PlannedFile`s and proves the config it wrote
loads with our own loader. `decide` looks at what is on disk: a file that already holds the
planned content is left alone (so a re-run changes nothing), a different file is only
replaced with `--force`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from string import Template

import pygit2
import yaml
from pydantic import ValidationError

from bot.config import DEFAULT_CONFIG_PATH, GatebotConfig, parse_config
from bot.config.deploy import DeployConfig, TargetConfig
from bot.config.env import GEMINI_KEYS
from bot.errors import ConfigError, UsageError
from bot.github.settings import DEFAULT_CHECK_NAME
from bot.onboarding.pins import CHECKOUT, GATEBOT, ActionPin

# The check run name the review action posts; branch protection must require exactly this.
CHECK_NAME = DEFAULT_CHECK_NAME
SSH_KEY_ENV = "GATEBOT_SSH_KEY"
KNOWN_HOSTS_ENV = "GATEBOT_KNOWN_HOSTS"
GEMINI_KEY_ENV = GEMINI_KEYS[0]

REVIEW_WORKFLOW = ".github/workflows/review.yml"
COMMANDS_WORKFLOW = ".github/workflows/gatebot-commands.yml"
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml"
APPROVE_WORKFLOW = ".github/workflows/gatebot-approve.yml"

_PLAIN = re.compile(r"^[A-Za-z0-9_./@-]+$")


class _Template(Template):
    # `$` and `${{ }}` belong to GitHub expressions and shell; our placeholders are @@{name}.
    delimiter = "@@"


def _template(name: str) -> _Template:
    text = resources.files("bot.onboarding").joinpath("templates", name).read_text("utf-8")
    return _Template(text)


def _scalar(value: str | int) -> str:
    """A YAML scalar for a user-supplied value: bare when unambiguous, else a JSON string."""
    if isinstance(value, int):
        return str(value)
    # `yes`, `null`, `1.0` … would load as something else than the string that was given.
    if _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


@dataclass(frozen=True)
class DeployTargetSpec:
    """What `--deploy-target NAME --host H [--user U --path P --port N]` asked for."""

    name: str
    host: str
    user: str = "deploy"
    path: str | None = None  # default /opt/<name>
    port: int = 22

    @property
    def remote_path(self) -> str:
        return self.path or f"/opt/{self.name}"

    @property
    def runner_label(self) -> str:
        return f"gatebot-{self.name}"

    def validate(self) -> TargetConfig:
        """The TargetConfig this spec becomes; bad flags are a UsageError naming the flag."""
        if not self.host or any(c.isspace() for c in self.host) or self.host.startswith("-"):
            raise UsageError(f"--host {self.host!r}: expected a host name or address")
        if not self.user or any(c.isspace() for c in self.user):
            raise UsageError(f"--user {self.user!r}: expected a login name")
        try:
            target = TargetConfig(
                host=self.host,
                port=self.port,
                user=self.user,
                path=self.remote_path,
                identity_env=SSH_KEY_ENV,
                known_hosts_env=KNOWN_HOSTS_ENV,
            )
        except ValidationError as exc:
            flags = {"port": "--port", "path": "--path", "host": "--host", "user": "--user"}
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            raise UsageError(
                f"{flags.get(key, '--deploy-target')}: {err['msg'].removeprefix('Value error, ')}"
            ) from None
        try:
            DeployConfig(targets={self.name: target})  # the config's own rule for target names
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise UsageError(f"--deploy-target: {msg}") from None
        return target


@dataclass(frozen=True)
class InitOptions:
    action: ActionPin = GATEBOT
    target: DeployTargetSpec | None = None


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the repository root, posix
    content: str
    purpose: str


def render_target(target: DeployTargetSpec) -> str:
    """The `deploy.targets.<name>` block, indented as it sits under `targets:`."""
    target.validate()
    return _template("target.yml").substitute(
        name=_scalar(target.name),
        host=_scalar(target.host),
        port=target.port,
        user=_scalar(target.user),
        path=_scalar(target.remote_path),
    )


def render_config(target: DeployTargetSpec | None) -> str:
    targets = " {}   # none yet" if target is None else render_target(target)
    return _template("gatebot.yml").substitute(targets=targets.rstrip("\n"))


def check_config_text(text: str, source: str) -> GatebotConfig:
    """Load rendered config text exactly as `load_config` would; a failure is our bug."""
    try:
        return parse_config(yaml.safe_load(text), source)
    except (ConfigError, yaml.YAMLError) as exc:
        raise UsageError(f"the generated {source} does not validate: {exc}") from None


def plan_files(options: InitOptions) -> list[PlannedFile]:
    """Every file init would write, with its content. Pure: reads only packaged templates."""
    config_text = render_config(options.target)
    check_config_text(config_text, str(DEFAULT_CONFIG_PATH))
    files = [
        PlannedFile(str(DEFAULT_CONFIG_PATH), config_text, "gatebot configuration"),
        PlannedFile(
            REVIEW_WORKFLOW,
            _template("review.yml").substitute(
                check_name=CHECK_NAME,
                checkout=CHECKOUT.uses(),
                review_action=options.action.uses(),
            ),
            "review gate on every pull request and merge group",
        ),
        PlannedFile(
            COMMANDS_WORKFLOW,
            _template("commands.yml").substitute(
                check_name=CHECK_NAME,
                checkout=CHECKOUT.uses(),
                review_action=options.action.uses(),
            ),
            "/gatebot review | approve | help comments on pull requests",
        ),
        PlannedFile(
            APPROVE_WORKFLOW,
            _template("approve.yml").substitute(
                check_name=CHECK_NAME,
                approve_action=options.action.uses("action/approve"),
            ),
            "a maintainer's approval of a PR's head commit (workflow_dispatch)",
        ),
    ]
    if options.target is not None:
        files.append(
            PlannedFile(
                DEPLOY_WORKFLOW,
                _template("deploy.yml").substitute(
                    target=options.target.name,
                    runner_label=options.target.runner_label,
                    checkout=CHECKOUT.uses(),
                    deploy_action=options.action.uses("action/deploy"),
                ),
                f"deploy + audit of {options.target.name} on push to main",
            )
        )
    return files


class FileState(str, Enum):
    CREATE = "create"
    UNCHANGED = "unchanged"  # already holds exactly the planned content
    OVERWRITE = "overwrite"  # differs, and --force was given
    KEEP = "keep"  # differs, no --force: left alone


@dataclass(frozen=True)
class FileAction:
    file: PlannedFile
    state: FileState


@dataclass(frozen=True)
class InitResult:
    root: Path
    actions: list[FileAction] = field(default_factory=list)

    @property
    def kept(self) -> list[FileAction]:
        return [a for a in self.actions if a.state is FileState.KEEP]


def repo_root(path: Path) -> Path:
    """The work tree root of the git repository containing `path`."""
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise UsageError(f"--repo {path}: not inside a git repository", hint="run `git init` first")
    repo = pygit2.Repository(found)
    if repo.workdir is None:
        raise UsageError(f"--repo {path}: a bare repository has no work tree to write into")
    return Path(repo.workdir).resolve()


def decide(files: list[PlannedFile], root: Path, *, force: bool) -> list[FileAction]:
    actions: list[FileAction] = []
    for planned in files:
        target = root / planned.path
        if not target.exists():
            state = FileState.CREATE
        elif target.is_file() and target.read_text("utf-8", errors="replace") == planned.content:
            state = FileState.UNCHANGED
        else:
            state = FileState.OVERWRITE if force else FileState.KEEP
        actions.append(FileAction(planned, state))
    return actions


def apply(actions: list[FileAction], root: Path) -> None:
    for action in actions:
        if action.state not in (FileState.CREATE, FileState.OVERWRITE):
            continue
        target = root / action.file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside, then rename: an interrupted init never leaves half a workflow behind.
        tmp = target.with_name(f".{target.name}.gatebot-tmp")
        tmp.write_text(action.file.content, encoding="utf-8")
        os.replace(tmp, target)


def run_init(repo: Path, options: InitOptions, *, force: bool, dry_run: bool) -> InitResult:
    root = repo_root(repo)
    actions = decide(plan_files(options), root, force=force)
    if not dry_run:
        apply(actions, root)
    return InitResult(root, actions)
