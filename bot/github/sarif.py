"""Optional SARIF 2.1.0 output, for GitHub code scanning (github/codeql-action/upload-sarif).

One rule per finding category; every finding with a path becomes a result (code scanning
shows whole-file results too, unlike check-run annotations).
"""

from __future__ import annotations

import json
from typing import Any

from bot import __version__
from bot.github.annotations import all_findings, level_for
from bot.review.models import Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"failure": "error", "warning": "warning", "notice": "note"}


def _rule_id(category: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in category.lower()).strip("-")
    return f"gatebot/{slug or 'finding'}"


def to_sarif(verdict: Verdict) -> dict[str, Any]:
    findings = all_findings(verdict)
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for f in findings:
        rule_id = _rule_id(f.category)
        rules.setdefault(
            rule_id,
            {"id": rule_id, "name": f.category, "shortDescription": {"text": f.category}},
        )
        location: dict[str, Any] = {"artifactLocation": {"uri": f.path}}
        if f.line is not None:
            region: dict[str, int] = {"startLine": f.line}
            if f.end_line is not None and f.end_line >= f.line:
                region["endLine"] = f.end_line
            location["region"] = region
        results.append(
            {
                "ruleId": rule_id,
                "level": _SARIF_LEVEL[level_for(f.severity, verdict.blocking_severity)],
                "message": {"text": f.message},
                "locations": [{"physicalLocation": location}],
                "properties": {"severity": f.severity, "source": f.source},
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gatebot",
                        "version": __version__,
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "results": results,
            }
        ],
    }


def render_sarif(verdict: Verdict) -> str:
    return json.dumps(to_sarif(verdict), indent=2, ensure_ascii=False) + "\n"
