"""The logic of the test stand-ins for the third-party actions our workflows pin.

act serves each pinned action from a directory of ours (`--local-repository`), so the Action
runs on a real runner emulator with no network. The stand-ins keep the inputs and outputs of
the real actions and the behaviour we rely on; each appends what it was given (all its inputs,
the runner's temp directory and workspace) and what it did to $ACT_STANDIN_RECORD (JSON lines).

- checkout: clones $ACT_STANDIN_CHECKOUT_SOURCE into the workspace (or `path`) and checks out
  `ref`, else the event's commit; `fetch-depth: 0` is the whole history.
- setup-python: reports the interpreter named by $ACT_STANDIN_SETUP_PYTHON; a version below 3
  is "not found", as the real action fails for a version it cannot provide.
- cache restore / save: an immutable key store in $ACT_STANDIN_CACHE_STORE, shared between
  runs. A lookup matches the key exactly, then as a prefix, then each restore key as a prefix,
  newest first, and only among entries of the same cache *version*, which @actions/cache
  computes as sha256 of the `path` lines as written, the compression method and the salt
  "1.0" joined with "|". Archives hold paths relative to GITHUB_WORKSPACE and are extracted
  there, like the real action's tar. Key rules: at most 10 keys, 512 characters, no commas.

Run as `python standin.py checkout|setup-python|cache-restore|cache-save` (and
`record-outputs`, the tests' own last workflow step).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

VERSION_SALT = "1.0"


def _inputs() -> dict[str, str]:
    raw = json.loads(os.environ.get("STANDIN_INPUTS") or "{}")
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _record(action: str, inputs: dict[str, str], **extra: Any) -> None:
    entry = {
        "action": action,
        "inputs": inputs,
        "runner_temp": os.environ.get("RUNNER_TEMP", ""),
        "workspace": os.environ.get("GITHUB_WORKSPACE", ""),
        "job": os.environ.get("GITHUB_JOB", ""),
        "workflow": os.environ.get("GITHUB_WORKFLOW", ""),
        **extra,
    }
    with open(os.environ["ACT_STANDIN_RECORD"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def _output(**values: str) -> None:
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
        for name, value in values.items():
            fh.write(f"{name}={value}\n")


def _fail(message: str) -> None:
    print(f"::error::{message}", flush=True)
    sys.exit(1)


def _workspace() -> Path:
    return Path(os.environ["GITHUB_WORKSPACE"])


# -- actions/checkout -------------------------------------------------------------------------


def checkout() -> None:
    inputs = _inputs()
    _record("checkout", inputs)
    repository = inputs.get("repository", "")
    if repository and repository != os.environ.get("GITHUB_REPOSITORY"):
        _fail(f"stand-in checkout serves only {os.environ.get('GITHUB_REPOSITORY')}")
    target = _workspace() / inputs.get("path", "")
    source = os.environ["ACT_STANDIN_CHECKOUT_SOURCE"]
    depth = int(inputs.get("fetch-depth") or "1")
    clone = ["git", "clone", "--quiet", "--no-checkout"]
    if depth > 0:
        clone += ["--depth", str(depth), "--no-single-branch"]
    subprocess.run([*clone, f"file://{source}", str(target)], check=True)
    ref = inputs.get("ref") or os.environ.get("GITHUB_SHA", "")
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", "--detach", ref], check=True)
    commit = subprocess.run(
        ["git", "-C", str(target), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    _output(ref=ref, commit=commit)


# -- actions/setup-python ---------------------------------------------------------------------


def setup_python() -> None:
    inputs = _inputs()
    wanted = inputs.get("python-version", "")
    _record("setup-python", inputs)
    m = re.match(r"^\s*(\d+)", wanted)
    if m is None or int(m.group(1)) < 3:
        _fail(f"The version '{wanted}' with architecture 'x64' was not found for this OS.")
    python = os.environ["ACT_STANDIN_SETUP_PYTHON"]
    version = ""
    if os.access(python, os.X_OK):
        probe = [python, "-c", "import platform; print(platform.python_version())"]
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        version = done.stdout.strip()
    print(f"Successfully set up Python {version or wanted} at {python}")
    _output(**{"python-version": version or wanted, "python-path": python, "cache-hit": "false"})


# -- actions/cache ----------------------------------------------------------------------------


def input_lines(value: str) -> list[str]:
    """@actions/cache's getInputAsArray: lines, `! x` folded to `!x`, trimmed, non-empty."""
    lines = (re.sub(r"^!\s+", "!", line).strip() for line in value.split("\n"))
    return [line for line in lines if line]


def compression_method() -> str:
    """As @actions/cache decides it on Linux: zstd (without --long) when `zstd` runs."""
    try:
        done = subprocess.run(
            ["zstd", "--quiet", "--version"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "gzip"
    return "zstd-without-long" if (done.stdout + done.stderr).strip() else "gzip"


def cache_version(paths: list[str], compression: str, cross_os: bool = False) -> str:
    """@actions/cache getCacheVersion (on Linux, `enableCrossOsArchive` changes nothing)."""
    del cross_os  # only Windows adds "windows-only" when it is false
    components = [*paths, compression, VERSION_SALT]
    return hashlib.sha256("|".join(components).encode("utf-8")).hexdigest()


def _check_keys(keys: list[str]) -> None:
    if len(keys) > 10:
        _fail("Key Validation Error: Keys are limited to a maximum of 10.")
    for key in keys:
        if len(key) > 512:
            _fail(f"Key Validation Error: {key} cannot be larger than 512 characters.")
        if "," in key:
            _fail(f"Key Validation Error: {key} cannot contain commas.")


def _resolve(paths: list[str]) -> list[str]:
    """The workspace-relative names tar stores (@actions/cache resolvePaths, no globs here)."""
    workspace = _workspace()
    out = []
    for pattern in paths:
        if pattern.startswith("!") or any(c in pattern for c in "*?[]{}"):
            _fail(f"the cache stand-in takes plain paths only, not {pattern!r}")
        path = Path(os.path.expanduser(pattern))
        absolute = path if path.is_absolute() else workspace / path
        if absolute.exists():
            out.append(os.path.relpath(absolute, workspace))
    return out


@contextmanager
def _store() -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    root = Path(os.environ["ACT_STANDIN_CACHE_STORE"])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs of one act run share the store
        index = root / "index.json"
        entries: list[dict[str, Any]] = json.loads(index.read_text()) if index.exists() else []
        yield root, entries
        index.write_text(json.dumps(entries, indent=1))


def _lookup(entries: list[dict[str, Any]], keys: list[str], version: str) -> dict[str, Any] | None:
    candidates = [e for e in reversed(entries) if e["version"] == version]  # newest first
    for e in candidates:
        if e["key"] == keys[0]:
            return e
    for prefix in keys:
        for e in candidates:
            if e["key"].startswith(prefix):
                return e
    return None


def cache_restore() -> None:
    inputs = _inputs()
    paths = input_lines(inputs.get("path", ""))
    primary = inputs.get("key", "").strip()
    keys = [primary, *input_lines(inputs.get("restore-keys", ""))]
    version = cache_version(paths, compression_method())
    workspace = _workspace()
    before = {p: sorted(os.listdir(workspace / p)) for p in paths if (workspace / p).is_dir()}
    _output(**{"cache-primary-key": primary})
    if not paths or not primary:
        _record("cache-restore", inputs, version=version, matched=None, existing=before)
        _fail("Input required and not supplied: path" if not paths else "key is empty")
    _check_keys(keys)
    with _store() as (root, entries):
        found = _lookup(entries, keys, version)
    _record(
        "cache-restore",
        inputs,
        version=version,
        matched=found["key"] if found else None,
        existing=before,
    )
    if found is None:
        if inputs.get("fail-on-cache-miss") == "true":
            _fail(f"Failed to restore cache entry. Exiting as fail-on-cache-miss is set. {keys}")
        print(f"Cache not found for input keys: {', '.join(keys)}")
        return
    if inputs.get("lookup-only") != "true":
        archive = root / found["archive"]
        subprocess.run(["tar", "-xf", str(archive), "-P", "-C", str(workspace)], check=True)
    exact = found["key"].lower() == primary.lower()
    _output(**{"cache-hit": str(exact).lower(), "cache-matched-key": found["key"]})
    print(f"Cache restored from key: {found['key']}")


def cache_save() -> None:
    inputs = _inputs()
    paths = input_lines(inputs.get("path", ""))
    key = inputs.get("key", "").strip()
    version = cache_version(paths, compression_method())
    _check_keys([key])
    names = _resolve(paths)
    outcome = "saved"
    with _store() as (root, entries):
        if not names:
            outcome = "no-paths"
            print(
                "::warning::Path Validation Error: Path(s) specified in the action for caching "
                "do(es) not exist, hence no cache is being saved."
            )
        elif any(e["key"] == key and e["version"] == version for e in entries):
            outcome = "exists"
            print(
                f"::warning::Failed to save: Unable to reserve cache with key {key}, another "
                "job may be creating this cache."
            )
        else:
            archive = f"{len(entries):04d}.tar"
            tar = ["tar", "--posix", "-cf", str(root / archive), "-P", "-C", str(_workspace())]
            subprocess.run([*tar, "--", *names], check=True)
            entries.append(
                {"key": key, "version": version, "archive": archive, "created": time.time()}
            )
    _record("cache-save", inputs, version=version, outcome=outcome)


def record_outputs() -> None:
    """Not a stand-in: the tests' last workflow step, which records the gate step's outputs
    and outcome as the workflow saw them ($OUTPUTS is `toJSON(steps.gate.outputs)`)."""
    entry = {
        "workflow": os.environ.get("GITHUB_WORKFLOW", ""),
        "job": os.environ.get("GITHUB_JOB", ""),
        "outputs": json.loads(os.environ.get("OUTPUTS") or "{}"),
        "outcome": os.environ.get("OUTCOME", ""),
        # What the workspace has checked out once the gate is done (a PR command must never
        # have checked out the PR's code).
        "workspace_head": subprocess.run(
            ["git", "-C", os.environ["GITHUB_WORKSPACE"], "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }
    with open(os.environ["ACT_STANDIN_OUTPUTS"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


COMMANDS = {
    "record-outputs": record_outputs,
    "checkout": checkout,
    "setup-python": setup_python,
    "cache-restore": cache_restore,
    "cache-save": cache_save,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]]()
