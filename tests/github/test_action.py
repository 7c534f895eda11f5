"""The Action's Python environment: action/requirements.txt pins what pyproject.toml requires.

The Action itself runs under act in tests/action/ (a real runner emulator, end to end).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_pin_every_runtime_dependency() -> None:
    import tomllib

    pins = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "action" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, version = dep.split("==")
        assert pins.get(name.lower().replace("_", "-")) == version, dep
