"""The audit as SARIF 2.1.0, the format GitHub code scanning uploads (`upload-sarif`).

Valid against the OASIS SARIF 2.1.0 schema (checked in `tests/audit/test_sarif.py`), and shaped
by what GitHub code scanning documents for third-party SARIF:

- one rule per finding code, with a stable `id`, `shortDescription`, `fullDescription` and
  `help` (text and markdown), whatever findings happen to come first (`rules.RULES`);
- each result has `ruleId`, `ruleIndex`, `level`, `message.text`, one location (the blocking
  call) and `partialFingerprints` that do not change when unrelated lines move: a hash of the
  file, code, entry point and call, numbered in line order when one repeats;
- every `artifactLocation.uri` is relative, with `uriBaseId` `%SRCROOT%`, declared in
  `originalUriBaseIds`: relative to the repository root when the audited folder is inside it
  (GitHub resolves relative URIs against the checkout), else to the audited folder;
- the chain from the entry point to the call is a code flow, so code scanning shows the path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from loopscope import __version__
from loopscope.audit.model import SEVERITY_RANK, AuditResult, Finding
from loopscope.audit.rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "loopscope/v1"
_LEVEL = {"error": "error", "warning": "warning", "hint": "note"}
_TAGS = ["asyncio", "concurrency", "performance"]


def uri_prefix(audited: Path, repository: Path) -> tuple[str, Path]:
    """The prefix that makes a path relative to `audited` relative to `repository`, and the
    folder `%SRCROOT%` stands for (`repository`, or `audited` when it lies outside it)."""
    folder = audited.absolute() if audited.is_dir() else audited.absolute().parent
    base = repository.absolute()
    if folder == base or base in folder.parents:
        rel = Path(os.path.relpath(folder, base)).as_posix()
        return ("" if rel == "." else rel + "/"), base
    return "", folder


def _location(prefix: str, where: str, message: str | None = None) -> dict[str, object]:
    path, _, line = where.rpartition(":")
    location: dict[str, object] = {
        "physicalLocation": {
            "artifactLocation": {"uri": prefix + path, "uriBaseId": SRCROOT},
            "region": {"startLine": int(line)},
        }
    }
    if message:
        location["message"] = {"text": message}
    return location


def fingerprints(findings: list[Finding]) -> list[str]:
    """A fingerprint per finding, stable across runs while the code around it moves: the hash
    of its file, code, entry point and call (no line), with an occurrence number when several
    findings share one (numbered in line order)."""
    keys = []
    for finding in findings:
        path = finding.where.rpartition(":")[0]
        text = "\0".join((path, finding.code, finding.entry, finding.call))
        keys.append(hashlib.sha256(text.encode()).hexdigest()[:32])
    order = sorted(range(len(findings)), key=lambda i: int(findings[i].where.rpartition(":")[2]))
    seen: dict[str, int] = {}
    numbered = [""] * len(findings)
    for i in order:
        seen[keys[i]] = seen.get(keys[i], 0) + 1
        numbered[i] = f"{keys[i]}:{seen[keys[i]]}"
    return numbered


def _result(finding: Finding, rule_index: int, prefix: str, fingerprint: str) -> dict[str, object]:
    steps = []
    for step in finding.chain:
        where, _, label = step.partition(" ")
        steps.append({"location": _location(prefix, where, label)})
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.message}. Fix: {finding.fix}."},
        "locations": [_location(prefix, finding.where)],
        "codeFlows": [{"threadFlows": [{"locations": steps}]}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }


def _rule(code: str, findings: list[Finding]) -> dict[str, object]:
    rule = RULES[code]
    severity = max((f.severity for f in findings if f.code == code), key=SEVERITY_RANK.__getitem__)
    return {
        "id": code,
        "name": rule.name,
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.full},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "help": {
            "text": f"{rule.full} Fix: {rule.fix}.",
            "markdown": f"**{rule.short}.** {rule.full}\n\nFix: {rule.fix}.",
        },
        "properties": {"tags": _TAGS, "precision": "high"},
    }


def to_sarif(result: AuditResult, repository: Path | None = None) -> str:
    """The SARIF 2.1.0 log of `result`, as JSON text; URIs relative to `repository` (default:
    the current directory) when the audited path lies inside it."""
    prefix, srcroot = uri_prefix(Path(result.root), repository or Path.cwd())
    codes = sorted({f.code for f in result.findings})
    prints = fingerprints(result.findings)
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loopscope",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": "https://pypi.org/project/loopscope/",
                        "rules": [_rule(code, result.findings) for code in codes],
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": srcroot.as_uri().rstrip("/") + "/"}},
                "results": [
                    _result(f, codes.index(f.code), prefix, fp)
                    for f, fp in zip(result.findings, prints, strict=True)
                ],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=1)
