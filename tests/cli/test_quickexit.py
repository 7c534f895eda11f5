"""The quick exit (bot/cli/quickexit.py) loses nothing: output, logs and the exit status are
the command's, and without `allow()` the ordinary shutdown runs (atexit handlers included)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import atexit, logging, sys
    from bot.cli import quickexit
    atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
    logging.basicConfig(stream=sys.stderr, format="%(message)s")
    sys.stdout.write("x" * 200000)  # more than a pipe holds: still buffered at exit
    logging.getLogger("t").warning("logged last")
    if sys.argv[1] == "allow":
        quickexit.allow()
    quickexit.exit_now(SystemExit(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2]))
    sys.stderr.write("ordinary shutdown\\n")
    sys.exit(4)
    """
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, timeout=60
    )


def test_allowed_exit_keeps_output_logs_and_status() -> None:
    for status in ("0", "3"):
        res = _run("allow", status)
        assert res.returncode == int(status)
        assert res.stdout == "x" * 200000
        assert res.stderr == "logged last\n"  # no atexit, no ordinary shutdown: it ended there


def test_text_status_is_printed_with_status_1() -> None:
    res = _run("allow", "deploy went wrong")
    assert res.returncode == 1
    assert res.stderr == "logged last\ndeploy went wrong\n"


def test_without_allow_the_ordinary_shutdown_runs() -> None:
    res = _run("no", "3")
    assert res.returncode == 4
    assert res.stdout == "x" * 200000
    assert res.stderr == "logged last\nordinary shutdown\natexit ran\n"


def test_a_broken_stdout_falls_back_to_the_ordinary_shutdown() -> None:
    # A stream that cannot be flushed: the quick exit steps aside, the ordinary path runs.
    program = PROGRAM.replace('sys.stdout.write("x" * 200000)', "sys.stdout.close()")
    res = subprocess.run(
        [sys.executable, "-c", program, "allow", "3"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 4
    assert "ordinary shutdown" in res.stderr


def test_under_a_tracer_the_ordinary_shutdown_runs() -> None:
    # coverage and cProfile write their data after the program: os._exit would lose it.
    program = "import sys\nsys.settrace(lambda *a: None)\n" + PROGRAM
    res = subprocess.run(
        [sys.executable, "-c", program, "allow", "3"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 4
    assert res.stderr == "logged last\nordinary shutdown\natexit ran\n"
