"""What an audit produces: entry points, findings with call chains, and what it could not read.

Plain data, no behaviour: renderers (`render`, `sarif`) and the CLI read these, nothing else.
Every location is `path:line` relative to the audited directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RunsOn = Literal["event loop", "thread pool"]
Severity = Literal["error", "warning", "hint"]
EntryKind = Literal[
    "route",
    "websocket",
    "dependency",
    "middleware",
    "exception handler",
    "lifespan",
    "event handler",
    "background task",
    "stream",
    "coroutine",
]

SEVERITY_RANK: dict[str, int] = {"hint": 0, "warning": 1, "error": 2}
"""Order of severities, for `--fail-on` and for sorting."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A function that FastAPI/Starlette call by themselves, and where they run it.

    `name` is what a person recognises (`POST /login` for a route, the function name otherwise);
    `function` is the qualified name of the code that runs; `where` its definition.
    """

    kind: EntryKind
    name: str
    function: str
    where: str
    runs_on: RunsOn
    why: str = ""

    def to_json(self) -> dict[str, str]:
        """The JSON form: `kind`, `name`, `where`, `runs_on` (and the `function` that runs)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "function": self.function,
            "where": self.where,
            "runs_on": self.runs_on,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One blocking call reached from one entry point (or one hint about an entry point).

    `where` is the blocking call itself; `chain` the steps `path:line function` from the entry
    point to that call, the shortest one found; `call` the blocking callable's qualified name.
    `flake8_async` names the flake8-async rule that covers the same call, if one does.
    """

    code: str
    severity: Severity
    where: str
    entry: str
    chain: tuple[str, ...]
    call: str
    fix: str
    message: str
    flake8_async: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON form: `code`, `severity`, `where`, `entry`, `chain`, `call`, `fix`, ..."""
        return {
            "code": self.code,
            "severity": self.severity,
            "where": self.where,
            "entry": self.entry,
            "chain": list(self.chain),
            "call": self.call,
            "fix": self.fix,
            "message": self.message,
            "flake8_async": self.flake8_async,
        }


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A call on the event loop whose target the audit could not determine (never dropped)."""

    where: str
    function: str
    text: str


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """A file the audit could not analyse (syntax error, unreadable, too large), and why."""

    path: str
    reason: str


@dataclass(slots=True)
class AuditResult:
    """Everything one audit found; `files` counts the files analysed."""

    root: str
    entries: list[Entry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    problems: list[SourceProblem] = field(default_factory=list)
    files: int = 0

    def worst(self) -> int:
        """The rank (`SEVERITY_RANK`) of the most severe finding, -1 when there is none."""
        return max((SEVERITY_RANK[f.severity] for f in self.findings), default=-1)

    def to_json(self) -> dict[str, object]:
        """The JSON document `loopscope audit --format json` prints."""
        return {
            "entries": [e.to_json() for e in self.entries],
            "findings": [f.to_json() for f in self.findings],
            "unresolved": [
                {"where": u.where, "function": u.function, "call": u.text} for u in self.unresolved
            ],
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
            "files": self.files,
        }
