"""Layers 4-7: the live release is the expected one, intact, with its dependencies, importable."""

from __future__ import annotations

import json
import shlex
from typing import Any

from bot.audit.context import AuditContext, Outcome, failed, parse_json_line, passed, skipped
from bot.deploy.integrity import IntegrityResult, verify_remote
from bot.deploy.layout import (
    RELEASE_MARKER,
    VENV_COMPLETE,
    VENV_LINK,
    integrity_excludes,
    release_id_from_link,
)
from bot.ssh.remote import run_bounded, tail
from bot.ssh.session import quote

# Host interpreter; lists `current` and every release's completion marker in one round trip.
RELEASE_SCRIPT = r"""
import json, os, sys
root, marker_name = sys.argv[1], sys.argv[2]
out = {"link": None, "error": None, "releases": {}}
cur = os.path.join(root, "current")
try:
    out["link"] = os.readlink(cur)
    out["exists"] = os.path.isdir(cur)
except OSError as exc:
    out["error"] = exc.strerror
rel = os.path.join(root, "releases")
try:
    names = sorted(os.listdir(rel))
except OSError:
    names = []
for name in names:
    marker = None
    try:
        with open(os.path.join(rel, name, marker_name)) as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        marker = None
    out["releases"][name] = marker if isinstance(marker, dict) else None
print(json.dumps(out))
"""

# Host interpreter; the venv link, its lock hash, completion marker and `pip check`.
DEPS_SCRIPT = r"""
import hashlib, json, os, subprocess, sys
release, lock_file, complete_name = sys.argv[1:4]
timeout = float(sys.argv[4])
out = {"link": None}
link = os.path.join(release, ".venv")
try:
    out["link"] = os.readlink(link)
except OSError as exc:
    out["link_error"] = exc.strerror
data = b""
if lock_file:
    try:
        with open(os.path.join(release, lock_file), "rb") as fh:
            data = fh.read()
    except OSError:
        out["lock_missing"] = True
out["lock_hash"] = hashlib.sha256(data).hexdigest()[:16]
venv = os.path.realpath(link)
out["complete"] = os.path.exists(os.path.join(venv, complete_name))
py = os.path.join(link, "bin", "python")
out["python"] = py
out["python_ok"] = os.access(py, os.X_OK)
if out["python_ok"]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    try:
        p = subprocess.run([py, "-m", "pip", "check"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env)
        out["pip_rc"] = p.returncode
        out["pip_out"] = p.stdout.decode("utf-8", "replace")[-3000:]
    except subprocess.TimeoutExpired:
        out["pip_rc"] = None
print(json.dumps(out))
"""

# The release's venv interpreter, cwd = the release; module output goes to stderr.
IMPORTS_SCRIPT = r"""
import importlib, json, sys
real_stdout, sys.stdout = sys.stdout, sys.stderr
res = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        res[name] = None
    except BaseException as exc:
        lines = str(exc).strip().splitlines()
        res[name] = "%s: %s" % (type(exc).__name__, lines[-1] if lines else "")
real_stdout.write(json.dumps(res) + "\n")
"""


def _is_bytecode_cache(path: str) -> bool:
    parts = path.split("/")
    return "__pycache__" in parts[:-1] and parts[-1].endswith((".pyc", ".pyo"))


def _short(sha: Any) -> str:
    return str(sha)[:7] if sha else "?"


def judge_release(
    listing: dict[str, Any], ctx: AuditContext, manifest_digest: str | None
) -> tuple[Outcome, str | None]:
    """Decide the release layer from the host's listing; also return the live release id."""
    name = ctx.name
    link = listing.get("link")
    if link is None:
        return failed(
            f"no `current` link under {ctx.target.path} ({listing.get('error')}): nothing is "
            f"deployed; run `gatebot deploy --target {name}`"
        ), None
    release_id = release_id_from_link(str(link))
    if release_id is None:
        return failed(
            f"`current` points at {link!r}, not at releases/<release-id>; repair it with "
            f"`gatebot rollback --target {name} --to RELEASE`"
        ), None
    releases: dict[str, Any] = listing.get("releases") or {}
    if release_id not in releases or not listing.get("exists"):
        return failed(
            f"`current` points at releases/{release_id}, which does not exist; roll back with "
            f"`gatebot rollback --target {name}`"
        ), release_id
    marker = releases.get(release_id)
    if marker is None:
        return failed(
            f"release {release_id} has no completion marker ({RELEASE_MARKER}): it was never "
            f"finished; redeploy with `gatebot deploy --target {name}`"
        ), release_id
    ctx.marker = marker
    if marker.get("release") != release_id:
        return failed(
            f"the marker of {release_id} names release {marker.get('release')!r}: the directory "
            "was copied or renamed by hand; redeploy"
        ), release_id
    expected = ctx.expected_sha
    live = str(marker.get("sha") or "")
    if expected and live != expected:
        holders = [rid for rid, m in sorted(releases.items()) if m and m.get("sha") == expected]
        fix = (
            f"release {holders[-1]} holds it: `gatebot rollback --target {name} --to {holders[-1]}`"
            if holders
            else f"no release of it on the host: `gatebot deploy --target {name} --ref {expected}`"
        )
        return failed(
            f"`current` -> {release_id} (sha {_short(live)}), expected sha {_short(expected)}; "
            + fix
        ), release_id
    if manifest_digest and marker.get("manifest_digest") not in (None, manifest_digest):
        return failed(
            f"the marker of {release_id} records a different file list than the git tree of "
            f"{_short(live)}: the release was built from another tree; redeploy"
        ), release_id
    data = {"release": release_id, "sha": live, "releases_on_host": len(releases)}
    return passed(
        f"`current` -> {release_id} (sha {_short(live)}, {marker.get('files', '?')} files), "
        "completion marker present",
        **data,
    ), release_id


async def check_release(ctx: AuditContext) -> Outcome:
    t = ctx.target
    res = await run_bounded(
        ctx.ssh(),
        quote([t.python, "-", t.path, RELEASE_MARKER]),
        input=RELEASE_SCRIPT,
        timeout=ctx.timeout_of("release"),
    )
    listing = parse_json_line(res.stdout)
    if listing is None:
        return failed(f"cannot list releases on the host: {tail(res.stderr) or res.exit_status}")
    manifest = ctx.get_manifest() if ctx.manifest is not None or ctx.expected_sha else None
    outcome, release_id = judge_release(listing, ctx, manifest.digest if manifest else None)
    if release_id is not None:
        ctx.release_id = release_id
        # Only a release that exists can lend its interpreter to the later layers.
        if listing.get("exists") and release_id in (listing.get("releases") or {}):
            ctx.release_dir = ctx.layout.release(release_id)
    return outcome


async def check_integrity(ctx: AuditContext) -> Outcome:
    assert ctx.release_dir is not None
    manifest = ctx.get_manifest()
    if manifest is None:
        return failed(f"no git tree to compare with: {ctx.manifest_error}")
    excludes = integrity_excludes(ctx.target.linked())
    result = await verify_remote(
        ctx.ssh(), ctx.release_dir, manifest, excludes, timeout=ctx.timeout_of("integrity")
    )
    # A running service writes bytecode caches next to its modules: extra ones are not tampering
    # (a changed or missing tracked file still is).
    caches = tuple(p for p in result.extra if _is_bytecode_cache(p))
    if caches:
        result = IntegrityResult(
            result.missing, result.changed, tuple(p for p in result.extra if p not in caches)
        )
    counts = {
        "files": len(manifest),
        "missing": len(result.missing),
        "changed": len(result.changed),
        "extra": len(result.extra),
    }
    if not result.ok:
        return failed(
            f"{ctx.release_id} differs from the git tree of {_short(manifest.sha)}: "
            f"{result.summary()}; someone edited the host: redeploy (a new release) or roll back",
            **counts,
            paths={
                "missing": list(result.missing[:20]),
                "changed": list(result.changed[:20]),
                "extra": list(result.extra[:20]),
            },
        )
    return passed(
        f"{len(manifest)} files match the git tree of {_short(manifest.sha)} "
        f"(excluded: {', '.join(excludes)})",
        **counts,
    )


def judge_dependencies(facts: dict[str, Any], ctx: AuditContext) -> Outcome:
    rid, name = ctx.release_id, ctx.name
    redeploy = f"redeploy with `gatebot deploy --target {name}` (it rebuilds the venv)"
    link = facts.get("link")
    want = str(facts.get("lock_hash"))
    if link is None:
        return failed(f"{rid} has no {VENV_LINK} link: the install never finished; {redeploy}")
    linked = str(link).rstrip("/").rsplit("/", 1)[-1]
    if linked != want:
        lock = ctx.target.lock_file or "(no lock file)"
        return failed(
            f"{rid}/{VENV_LINK} -> {link}, but {lock} hashes to {want}: the venv was built "
            f"for another lock file; {redeploy}"
        )
    marker_hash = (ctx.marker or {}).get("lock_hash")
    if marker_hash and marker_hash != want:
        return failed(
            f"{ctx.target.lock_file} in {rid} hashes to {want} but the release was built with "
            f"{marker_hash}: the lock file was edited on the host; {redeploy}"
        )
    if not facts.get("complete"):
        return failed(f"venvs/{want} has no {VENV_COMPLETE}: its install was cut short; {redeploy}")
    if not facts.get("python_ok"):
        return failed(f"{facts.get('python')} is not executable: the venv is broken; {redeploy}")
    ctx.venv_python = str(facts["python"])
    rc = facts.get("pip_rc")
    if rc is None:
        return failed(f"`pip check` did not finish within {ctx.timeout_of('dependencies'):.0f}s")
    out = str(facts.get("pip_out") or "").strip()
    if rc != 0 and "No module named pip" in out:
        return failed(
            f"cannot run `pip check`: the venv venvs/{want} has no pip (and sees none); create "
            f"venvs with pip (drop --without-pip from deploy.targets.{name}.venv_args)"
        )
    if rc != 0:
        problems = [line for line in out.splitlines() if line.strip()]
        shown = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        return failed(
            f"`pip check` in venvs/{want} found broken requirements: {shown}; pin the missing "
            f"versions in {ctx.target.lock_file} and redeploy",
            lock_hash=want,
            problems=problems[:20],
        )
    return passed(f"{VENV_LINK} -> venvs/{want} (complete), pip check clean", lock_hash=want)


async def check_dependencies(ctx: AuditContext) -> Outcome:
    assert ctx.release_dir is not None
    t = ctx.target
    budget = max(1.0, ctx.timeout_of("dependencies") - 1)
    res = await run_bounded(
        ctx.ssh(),
        quote([t.python, "-", ctx.release_dir, t.lock_file or "", VENV_COMPLETE, f"{budget}"]),
        input=DEPS_SCRIPT,
        timeout=ctx.timeout_of("dependencies"),
    )
    facts = parse_json_line(res.stdout)
    if facts is None:
        return failed(f"cannot inspect the venv on the host: {tail(res.stderr) or res.exit_status}")
    return judge_dependencies(facts, ctx)


async def check_imports(ctx: AuditContext) -> Outcome:
    modules = ctx.audit.imports
    if not modules:
        return skipped("no modules configured (audit.imports)")
    if ctx.venv_python is None:
        return skipped("the release's venv is not usable (see dependencies)")
    assert ctx.release_dir is not None
    res = await run_bounded(
        ctx.ssh(),
        # -B: importing must not write __pycache__ into the release (integrity would see it).
        f"{shlex.quote(ctx.venv_python)} -B - {quote(modules)}",
        input=IMPORTS_SCRIPT,
        cwd=ctx.release_dir,
        timeout=ctx.timeout_of("imports"),
    )
    results = parse_json_line(res.stdout)
    if results is None:
        return failed(
            f"the import check did not report (exit {res.exit_status}): {tail(res.stderr)}"
        )
    broken = {m: err for m, err in results.items() if err is not None}
    if broken:
        shown = "; ".join(f"{m}: {json.dumps(err)[1:-1]}" for m, err in broken.items())
        return failed(
            f"{len(broken)} of {len(modules)} modules do not import in {ctx.release_id}'s venv: "
            f"{shown}; fix the code or add the missing dependency and redeploy",
            broken=broken,
        )
    return passed(f"{', '.join(modules)} import in the release's venv", modules=modules)
