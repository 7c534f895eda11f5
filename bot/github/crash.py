"""No exit path leaves a check in progress: the review's guard against its own failures.

`closed_on_error` wraps everything `gatebot review` does after it knows the commit range.
Whatever escapes it — a bug (`gatebot crashed: KeyError`), an error gatebot raised on purpose
(`gatebot did not finish: …`), SIGTERM from the Action's time limit — still:
- writes DIR/verdict.json (verdict `fail`, `crash` naming the kind), summary.md, metrics.json;
- completes the check run `failure` with that title and a link to the run's log, or posts one
  if none was opened, so a required status never waits forever and never passes;
- prints the traceback, made inert (bot/inert.py) and with credentials in URLs redacted.
The process then exits 3 (2 for a usage or configuration error, as before; 143 on SIGTERM,
without waiting for model calls in flight).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from bot import localstate
from bot.config.env import TIMEOUT_MINUTES
from bot.errors import GatebotError, InfrastructureError
from bot.inert import printable
from bot.redact import redact
from bot.review.models import Crash, Verdict
from bot.review.summary import render_summary

if TYPE_CHECKING:
    from bot.github.integration import ActionsContext


class Stopped(BaseException):
    """SIGTERM arrived (the Action's time limit, a cancelled job): stop, but close the check.

    A BaseException, so that no `except Exception` on the way swallows it."""


class Crashed(InfrastructureError):
    """gatebot stopped on an internal error; the check was closed as failure."""

    exit_code = 3


def crash_verdict(
    base_sha: str, head_sha: str, kind: str, message: str, log_url: str | None
) -> Verdict:
    """verdict.json for a run that did not finish: fail, nothing reviewed, the crash named."""
    why = f"gatebot crashed: {kind}" if kind else "gatebot did not finish"
    return Verdict(
        verdict="fail",
        base_sha=base_sha,
        head_sha=head_sha,
        provider="none",
        degraded=True,
        degraded_reason=f"{why}: {message}"[:500],
        reasons=[f"{why}: {message}"[:2000] + (f" (log: {log_url})" if log_url else "")],
        crash=Crash(kind=kind, message=message[:2000], log_url=log_url),
    )


def _write(out_dir: Path, verdict: Verdict) -> None:
    localstate.claim(out_dir)
    (out_dir / "verdict.json").write_text(verdict.model_dump_json(indent=2) + "\n", "utf-8")
    summary = render_summary(verdict, tuple(verdict.reasons))
    (out_dir / "summary.md").write_text(summary, "utf-8")
    (out_dir / "metrics.json").write_text(verdict.metrics.model_dump_json(indent=2) + "\n", "utf-8")


def kind_of(exc: BaseException) -> str:
    return type(exc).__name__


def _describe(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for people: the type and its text, inert and without credentials."""
    if isinstance(exc, Stopped):
        # The Action runs the review under `timeout` with its timeout-minutes input; a
        # cancelled job gets SIGINT first, which the Action's cancelled step reports.
        minutes = re.sub(r"[^0-9.]", "", os.environ.get(TIMEOUT_MINUTES, ""))
        if minutes:
            return "", f"the review timed out after {minutes} minutes (SIGTERM)"
        return "", "stopped by SIGTERM (a time limit or a stopped job)"
    if isinstance(exc, GatebotError):
        return "", printable(redact(exc.message))[:2000]
    text = printable(redact(str(exc)))[:2000] or "(no message)"
    return kind_of(exc), text


def _print_traceback(exc: BaseException) -> None:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    for chunk in lines:
        for line in chunk.rstrip("\n").split("\n"):
            print(printable(redact(line)), file=sys.stderr)


@contextmanager
def _on_sigterm(close: Callable[[BaseException], None]) -> Iterator[None]:
    """While inside: SIGTERM closes the check (`close`) and exits 143 at once. Unwinding
    instead would wait for model calls in flight (their threads are joined at exit), which
    is exactly what a time limit cannot afford."""
    main_pid = os.getpid()
    closing = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal closing
        if os.getpid() != main_pid:  # a forked worker of the free stages: just go
            os._exit(128 + signum)
        if closing:
            return
        closing = True
        try:
            close(Stopped())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def closed_on_error(
    ctx: ActionsContext | None, *, base_sha: str, head_sha: str, out_dir: Path
) -> Iterator[None]:
    """See the module docstring. GatebotErrors keep their exit code; anything else is Crashed."""
    log_url = ctx.settings.details_url() if ctx is not None else None

    def close(exc: BaseException) -> None:
        kind, message = _describe(exc)
        if not isinstance(exc, (GatebotError, Stopped)):
            _print_traceback(exc)
        if isinstance(exc, Stopped):  # no exception handler will print this one
            print(f"gatebot: {message}", file=sys.stderr)
        verdict = crash_verdict(base_sha, head_sha, kind, message, log_url)
        try:
            _write(out_dir, verdict)
        except (OSError, ValueError) as write_error:
            print(f"gatebot: verdict.json not written: {write_error}", file=sys.stderr)
        if ctx is not None:
            title = f"gatebot crashed: {kind}" if kind else f"gatebot did not finish: {message}"
            ctx.abandon(head_sha, message, title=title)

    try:
        with _on_sigterm(close):
            yield
    except Exception as exc:  # every failure must close the check (it is raised again)
        close(exc)
        if isinstance(exc, GatebotError):
            raise
        raise Crashed(f"crashed: {kind_of(exc)}") from None
