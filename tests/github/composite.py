"""Run a composite action's steps the way the Actions runner does, for tests.

- `${{ … }}` expressions are evaluated in `env:`, `with:`, `if:` and `outputs:` only; a `run:`
  script containing one is refused (inputs must reach scripts through `env:`).
- `run:` steps execute with `bash --noprofile --norc -eo pipefail FILE` (the runner's
  `shell: bash`), in the workspace, with fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files.
- `uses:` steps are emulated: actions/setup-python reports the running interpreter, and
  actions/cache restore/save copy the cache directory in and out of a local store with
  actions/cache's rules (exact key, else the newest entry matching a restore-keys prefix;
  an existing key is never overwritten).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.github.runner import parse_output_file

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class CacheStore:
    root: Path
    entries: list[str] = field(default_factory=list)  # keys, oldest first
    restored: list[str | None] = field(default_factory=list)  # matched key per restore

    def _dir(self, key: str) -> Path:
        return self.root / str(self.entries.index(key))

    def restore(self, path: Path, key: str, restore_keys: list[str]) -> dict[str, str]:
        matched: str | None = key if key in self.entries else None
        if matched is None:
            for prefix in restore_keys:
                hits = [k for k in self.entries if k.startswith(prefix)]
                if hits:
                    matched = hits[-1]
                    break
        self.restored.append(matched)
        if matched is None:
            return {"cache-hit": "false"}
        if path.exists():
            shutil.rmtree(path)
        shutil.copytree(self._dir(matched), path)
        return {"cache-hit": str(matched == key).lower(), "cache-matched-key": matched}

    def save(self, path: Path, key: str) -> dict[str, str]:
        if key in self.entries:  # immutable: actions/cache warns and keeps the old entry
            return {}
        self.entries.append(key)
        shutil.copytree(path, self._dir(key))
        return {}


@dataclass
class StepResult:
    id: str | None
    name: str
    ran: bool
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    seconds: float = 0.0


@dataclass
class ActionRun:
    steps: list[StepResult]
    outputs: dict[str, str]

    @property
    def failed(self) -> bool:
        return any(s.exit_code != 0 for s in self.steps)

    def step(self, step_id: str) -> StepResult:
        return next(s for s in self.steps if s.id == step_id)

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)


class CompositeRunner:
    def __init__(
        self,
        action_dir: Path,
        workspace: Path,
        runner_env: Mapping[str, str],
        cache: CacheStore,
        tmp: Path,
        token: str,
    ) -> None:
        self.action_dir = action_dir
        self.action = yaml.safe_load((action_dir / "action.yml").read_text())
        assert self.action["runs"]["using"] == "composite"
        self.workspace = workspace
        self.runner_env = dict(runner_env)
        self.cache = cache
        self.tmp = tmp
        self.token = token

    # -- expressions ---------------------------------------------------------------------

    def _value(self, expr: str, ctx: dict[str, Any]) -> str:
        expr = expr.strip()
        if expr.startswith("'") and expr.endswith("'"):
            return expr[1:-1]
        parts = expr.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return str(ctx["inputs"][parts[1]])
        if parts[0] == "github" and len(parts) == 2:
            return {"action_path": str(self.action_dir), "token": self.token}[parts[1]]
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return ctx["steps"].get(parts[1], {}).get(parts[3], "")
        raise AssertionError(f"expression not supported by the test runner: {expr!r}")

    def _condition(self, expr: str, ctx: dict[str, Any]) -> bool:
        result = True
        for term in (t.strip() for t in expr.split("&&")):
            if term == "!cancelled()":
                continue
            if term == "always()":
                continue
            m = re.fullmatch(r"(.+?)\s*(!=|==)\s*(.+)", term)
            if not m:
                raise AssertionError(f"condition not supported by the test runner: {term!r}")
            left, op, right = self._value(m[1], ctx), m[2], self._value(m[3], ctx)
            result = result and ((left != right) if op == "!=" else (left == right))
        return result

    def _render(self, text: Any, ctx: dict[str, Any]) -> str:
        return _EXPR.sub(lambda m: self._value(m[1], ctx), str(text))

    # -- steps ---------------------------------------------------------------------------

    def _uses(self, uses: str, with_: dict[str, str]) -> dict[str, str]:
        name = uses.split("@", 1)[0]
        if name == "actions/setup-python":
            return {"python-path": sys.executable, "python-version": "3.11"}
        if name == "actions/cache/restore":
            keys = [k for k in with_.get("restore-keys", "").splitlines() if k.strip()]
            return self.cache.restore(Path(with_["path"]), with_["key"], keys)
        if name == "actions/cache/save":
            return self.cache.save(Path(with_["path"]), with_["key"])
        raise AssertionError(f"no emulation for {uses}")

    def run(self, inputs: Mapping[str, str]) -> ActionRun:
        declared = self.action.get("inputs", {})
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs not declared in action.yml: {unknown}"
        values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        values.update(inputs)
        ctx: dict[str, Any] = {"steps": {}}
        # Input defaults may be expressions themselves (github.token).
        ctx["inputs"] = values
        ctx["inputs"] = {k: self._render(v, ctx) for k, v in values.items()}
        results: list[StepResult] = []
        failed = False
        for n, step in enumerate(self.action["runs"]["steps"]):
            sid = step.get("id")
            name = step.get("name", f"step {n}")
            cond = step.get("if")
            if cond is not None:
                cond_expr = _EXPR.fullmatch(cond.strip())
                go = self._condition(cond_expr[1] if cond_expr else cond, ctx)
            else:
                go = not failed  # success()
            if not go:
                results.append(StepResult(sid, name, ran=False))
                continue
            if "uses" in step:
                with_ = {k: self._render(v, ctx) for k, v in (step.get("with") or {}).items()}
                outputs = self._uses(step["uses"], with_)
                result = StepResult(sid, name, ran=True, outputs=outputs)
            else:
                result = self._run_step(n, step, sid, name, ctx)
            results.append(result)
            if sid:
                ctx["steps"][sid] = result.outputs
            failed = failed or result.exit_code != 0
        outputs = {
            k: self._render(spec["value"], ctx)
            for k, spec in (self.action.get("outputs") or {}).items()
        }
        return ActionRun(results, outputs)

    def _run_step(
        self, n: int, step: dict[str, Any], sid: str | None, name: str, ctx: dict[str, Any]
    ) -> StepResult:
        assert step.get("shell") == "bash", f"{name}: shell must be bash"
        script = step["run"]
        assert "${{" not in script, f"{name}: an expression inside run: (use env:)"
        assert script.lstrip().startswith("set -euo pipefail"), f"{name}: no set -euo pipefail"
        files = self.tmp / f"step-{len(list(self.tmp.iterdir()))}-{n}"
        files.mkdir()
        out_file, summary_file = files / "output", files / "summary"
        out_file.touch()
        summary_file.touch()
        script_file = files / "script.sh"
        script_file.write_text(script)
        env = dict(self.runner_env)
        env.update({k: self._render(v, ctx) for k, v in (step.get("env") or {}).items()})
        env["GITHUB_OUTPUT"] = str(out_file)
        env["GITHUB_STEP_SUMMARY"] = str(summary_file)
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return StepResult(
            sid,
            name,
            ran=True,
            exit_code=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
            outputs=parse_output_file(out_file),
            summary=summary_file.read_text(),
            seconds=time.monotonic() - started,
        )
