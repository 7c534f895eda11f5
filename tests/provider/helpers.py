"""Building FileChanges for the model-side tests (pure values; the e2e tests use real repos)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.review.types import DiffLine, FileChange, Hunk


def added_file(path: str, lines: Sequence[str]) -> FileChange:
    dl = tuple(DiffLine("+", None, i + 1, f"{text}\n") for i, text in enumerate(lines))
    hunk = Hunk(0, 0, 1, len(lines), f"@@ -0,0 +1,{len(lines)} @@\n", dl)
    return FileChange(path, None, "added", None, "1" * 40, 0, 0o100644, False, 0, 100, (hunk,))


def edited_file(path: str, old: Sequence[str], new: Sequence[str], at: int = 1) -> FileChange:
    """A one-hunk modification replacing `old` lines by `new` ones starting at line `at`."""
    lines = [DiffLine("-", at + i, None, f"{t}\n") for i, t in enumerate(old)]
    lines += [DiffLine("+", None, at + i, f"{t}\n") for i, t in enumerate(new)]
    header = f"@@ -{at},{len(old)} +{at},{len(new)} @@\n"
    hunk = Hunk(at, len(old), at, len(new), header, tuple(lines))
    return FileChange(
        path, None, "modified", "2" * 40, "3" * 40, 0o100644, 0o100644, False, 100, 100, (hunk,)
    )


def many_hunks(path: str, hunks: int, lines_per_hunk: int, width: int = 60) -> FileChange:
    """A modification with `hunks` separate added runs, each `lines_per_hunk` long."""
    out: list[Hunk] = []
    new_line = 1
    for h in range(hunks):
        start = new_line + 10
        lines = tuple(
            DiffLine("+", None, start + i, f"v{h}_{i} = {'x' * width}\n")
            for i in range(lines_per_hunk)
        )
        header = f"@@ -{start},0 +{start},{lines_per_hunk} @@ def f{h}():\n"
        out.append(Hunk(start, 0, start, lines_per_hunk, header, lines))
        new_line = start + lines_per_hunk
    return FileChange(
        path, None, "modified", "2" * 40, "3" * 40, 0o100644, 0o100644, False, 10, 10, tuple(out)
    )
