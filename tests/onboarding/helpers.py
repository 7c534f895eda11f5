"""Run the real `gatebot` entry point in-process and capture what a user would see."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.cli.main import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def gatebot(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()  # drop anything printed before
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return Run(code if isinstance(code, int) else 0, captured.out, captured.err)
