"""Verdicts for the outlet tests, built from the public models (no pipeline needed)."""

from __future__ import annotations

from bot.review.models import FileResult, Finding, Metrics, Verdict

BASE = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
HEAD = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


def findings(n: int, path: str = "src/app.py", severity: str = "high") -> list[Finding]:
    return [
        Finding(
            path=path,
            line=i + 1,
            severity=severity,  # type: ignore[arg-type]
            category="security",
            message=f"finding {i}: user input reaches a shell, a, b: c",
            source="model",
        )
        for i in range(n)
    ]


def verdict(
    n_findings: int = 0,
    value: str = "fail",
    severity: str = "high",
    extra_files: list[FileResult] | None = None,
    **kw: object,
) -> Verdict:
    files = [
        FileResult(
            path="src/app.py",
            status="reviewed",
            tier="standard",
            model="gemini-2.5-flash",
            findings=findings(n_findings, severity=severity),
        ),
        FileResult(path="src/cached.py", status="cached"),
        FileResult(path="poetry.lock", status="skipped", reason="lock file"),
        *(extra_files or []),
    ]
    fields: dict[str, object] = {"provider": "gemini", **kw}
    return Verdict(
        verdict=value,  # type: ignore[arg-type]
        base_sha=BASE,
        head_sha=HEAD,
        files=files,
        metrics=Metrics(
            api_calls=1,
            batches=1,
            files_total=3,
            files_reviewed=1,
            files_cached=1,
            files_skipped=1,
            cache_hit_rate=0.5,
            input_tokens=1200,
            output_tokens=300,
            cost_usd=0.0021,
            baseline_api_calls=3,
            baseline_cost_usd=0.0150,
            cost_reduction_rate=0.86,
            files_per_call=1.0,
        ),
        **fields,  # type: ignore[arg-type]
    )
