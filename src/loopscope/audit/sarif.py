"""The audit as SARIF 2.1.0, the format GitHub code scanning uploads (`upload-sarif`).

One rule per finding code; each result points at the blocking call and carries the chain from
the entry point as a code flow, so code scanning shows the path step by step.
"""

from __future__ import annotations

import json

from loopscope import __version__
from loopscope.audit.model import AuditResult, Finding

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "hint": "note"}


def _location(where: str, message: str | None = None) -> dict[str, object]:
    path, _, line = where.rpartition(":")
    location: dict[str, object] = {
        "physicalLocation": {
            "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": int(line)},
        }
    }
    if message:
        location["message"] = {"text": message}
    return location


def _result(finding: Finding, rule_index: int) -> dict[str, object]:
    steps = []
    for step in finding.chain:
        where, _, label = step.partition(" ")
        steps.append({"location": _location(where, label)})
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.message}. Fix: {finding.fix}."},
        "locations": [_location(finding.where)],
        "codeFlows": [{"threadFlows": [{"locations": steps}]}],
        "partialFingerprints": {"loopscope/v1": f"{finding.code}:{finding.entry}:{finding.call}"},
    }


def to_sarif(result: AuditResult) -> str:
    """The SARIF 2.1.0 log of `result`, as JSON text."""
    codes = sorted({f.code for f in result.findings})
    rules = []
    for code in codes:
        first = next(f for f in result.findings if f.code == code)
        rules.append(
            {
                "id": code,
                "name": code,
                "shortDescription": {"text": first.message.split(" on the event loop")[0]},
                "defaultConfiguration": {"level": _LEVEL[first.severity]},
                "help": {"text": first.fix},
            }
        )
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loopscope",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/loopscope/",
                        "rules": rules,
                    }
                },
                "results": [_result(f, codes.index(f.code)) for f in result.findings],
            }
        ],
    }
    return json.dumps(log, indent=1)
