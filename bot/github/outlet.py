"""The Actions outlet: the one way gatebot writes to the runner outside the GitHub API — the job
summary ($GITHUB_STEP_SUMMARY), step outputs ($GITHUB_OUTPUT) and workflow commands on stdout
(`::warning::`, `::add-mask::`...). Review, deploy and audit all write through it, so the size
limits (bot/github/limits.py) and the escaping (bot/github/commands.py, outputs.py) apply in one
place. The check run and its annotations go through the API (bot/github/integration.py).

Outside Actions (no GITHUB_ACTIONS=true) the files are not there and a warning is a plain
`warning: …` line on stderr instead of a workflow command.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from bot.github.commands import add_mask, command
from bot.github.limits import STEP_SUMMARY_LIMIT, truncate_bytes
from bot.github.outputs import append_file, format_outputs


class ActionsOutlet:
    def __init__(
        self,
        *,
        in_actions: bool,
        summary_path: Path | None = None,
        output_path: Path | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.in_actions = in_actions
        self.summary_path = summary_path
        self.output_path = output_path
        self._stdout = stdout
        self._stderr = stderr
        self._summary_bytes = 0  # written by this step so far (the limit is per step)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **streams: TextIO) -> ActionsOutlet:
        def path(name: str) -> Path | None:
            value = env.get(name, "")
            return Path(value) if value else None

        return cls(
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            summary_path=path("GITHUB_STEP_SUMMARY"),
            output_path=path("GITHUB_OUTPUT"),
            **streams,
        )

    def summary(self, markdown: str, *, full: str = "the report file") -> bool:
        """Append to the job summary, within what the step has left of the runner's limit;
        a cut says so and points at `full`. False when there is no job summary."""
        if self.summary_path is None:
            return False
        budget = max(0, STEP_SUMMARY_LIMIT - self._summary_bytes)
        text = truncate_bytes(markdown.rstrip("\n") + "\n", budget, full) if budget > 200 else ""
        if text:
            append_file(self.summary_path, text)
            self._summary_bytes += len(text.encode("utf-8"))
        return True

    def outputs(self, values: Mapping[str, str]) -> bool:
        """Set step outputs (injection-proof delimiters). False outside Actions."""
        if not self.in_actions or self.output_path is None:
            return False
        append_file(self.output_path, format_outputs(values))
        return True

    def command(
        self, name: str, message: str, properties: dict[str, str | int] | None = None
    ) -> None:
        print(command(name, message, properties), file=self._stdout or sys.stdout, flush=True)

    def warning(self, message: str, *, title: str | None = None) -> None:
        """On stderr: an annotation in Actions (the runner reads commands there too), a plain
        `warning:` line elsewhere."""
        props: dict[str, str | int] | None = {"title": title} if title else None
        line = command("warning", message, props) if self.in_actions else f"warning: {message}"
        print(line, file=self._stderr or sys.stderr, flush=True)

    def mask(self, secret: str) -> None:
        line = add_mask(secret)
        if line is not None and self.in_actions:
            print(line, file=self._stdout or sys.stdout, flush=True)
