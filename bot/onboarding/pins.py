"""The action references the generated workflows use, pinned to full commit shas.

A tag can be moved by whoever controls the repository; a 40-hex sha cannot, which is why
zizmor's `unpinned-uses` audit demands it. The tag stays beside the sha as a comment so
Dependabot/Renovate and people can still read the version. The third-party pins are the same
ones our own `.github/workflows/*.yml` use; bump them together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import UsageError

_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ActionPin:
    repo: str  # owner/name
    sha: str
    tag: str  # shown as a comment only

    def uses(self, subpath: str = "") -> str:
        """The value of a `uses:` line, e.g. `owner/gatebot/action/deploy@<sha> # v1`."""
        where = f"{self.repo}/{subpath.strip('/')}" if subpath else self.repo
        return f"{where}@{self.sha} # {self.tag}"


CHECKOUT = ActionPin("actions/checkout", "08c6903cd8c0fde910a37f88322edcfb5dd907a8", "v5.0.0")

# The published gatebot action: a commit that holds action.yml and action/deploy/action.yml.
# Release engineering moves this pin (and the owner) when a release is tagged;
# `gatebot init --action OWNER/REPO@SHA` pins a fork or a newer release instead.
GATEBOT = ActionPin("OWNER/gatebot", "5ef134d8bb02916789120d5273bca39af62015cf", "v1")


def parse_action(spec: str) -> ActionPin:
    """Parse `owner/repo@<40-hex sha>`; a tag or branch is refused (it can move under you)."""
    repo, sep, ref = spec.partition("@")
    if not sep or not _REPO.match(repo):
        raise UsageError(f"--action {spec!r}: expected OWNER/REPO@SHA")
    if not _SHA.match(ref):
        raise UsageError(
            f"--action {spec!r}: {ref!r} is not a full commit sha",
            hint="pin the 40-hex commit sha of the release (a tag can be moved later)",
        )
    return ActionPin(repo, ref, ref[:12])
