"""What a doctor check reports: a status, one line of detail and, unless it passed, one fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bot.redact import redact

Status = Literal["pass", "warn", "fail", "skip"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    id: str  # stable, for machines: "config", "gemini.api", "target.inf.ssh" …
    title: str
    status: Status
    detail: str
    fix: str | None = None
    duration_ms: float = 0.0

    def redacted(self, secrets: Iterable[str]) -> CheckResult:
        """The same result with every secret value cut out of the text (errors can echo them),
        and the credentials of any URL in it (GOOGLE_GEMINI_BASE_URL, GITHUB_API_URL)."""
        detail, fix = redact(self.detail), redact(self.fix) if self.fix else self.fix
        for secret in secrets:
            if len(secret) >= 4:
                detail = detail.replace(secret, "***")
                fix = fix.replace(secret, "***") if fix else fix
        return CheckResult(self.id, self.title, self.status, detail, fix, self.duration_ms)


def passed(id: str, title: str, detail: str, ms: float = 0.0) -> CheckResult:
    return CheckResult(id, title, "pass", detail, None, ms)


def warned(id: str, title: str, detail: str, fix: str, ms: float = 0.0) -> CheckResult:
    return CheckResult(id, title, "warn", detail, fix, ms)


def failed(id: str, title: str, detail: str, fix: str, ms: float = 0.0) -> CheckResult:
    return CheckResult(id, title, "fail", detail, fix, ms)


def skipped(id: str, title: str, detail: str) -> CheckResult:
    return CheckResult(id, title, "skip", detail)


@dataclass(frozen=True)
class DoctorReport:
    checks: list[CheckResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        # Failing checks are a failed run (1), like a failed audit; usage errors are raised (2).
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "ok": self.ok,
            "counts": self.counts(),
            "duration_s": round(self.duration_s, 3),
            "checks": [asdict(c) | {"duration_ms": round(c.duration_ms, 1)} for c in self.checks],
        }
