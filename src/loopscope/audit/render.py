"""The audit as people read it (a rich table and findings with chains) and as JSON."""

from __future__ import annotations

import json
from collections import Counter

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loopscope.audit.model import AuditResult

_STYLE = {"error": "bold red", "warning": "yellow", "hint": "cyan"}
_RUNS_STYLE = {"event loop": "magenta", "thread pool": "blue"}


def inventory(result: AuditResult) -> Table:
    """The entry points: kind, name, where it is defined, where FastAPI/Starlette run it."""
    table = Table(title="Entry points", title_justify="left", expand=False)
    for column in ("kind", "entry", "defined at", "runs on"):
        table.add_column(column)
    for entry in result.entries:
        style = _RUNS_STYLE[entry.runs_on]
        table.add_row(entry.kind, escape(entry.name), entry.where, Text(entry.runs_on, style))
    return table


def findings_text(result: AuditResult) -> list[RenderableType]:
    """Each finding: severity, code, message, the chain from the entry point, and the fix."""
    parts: list[RenderableType] = []
    for f in result.findings:
        also = f" (flake8-async {f.flake8_async})" if f.flake8_async else ""
        head = Text.assemble(
            (f"{f.severity}", _STYLE[f.severity]), f" {f.code}{also} {f.where}: ", f.message
        )
        lines: list[RenderableType] = [head]
        if len(f.chain) > 1:
            lines += [Text(f"    {'→ ' if i else ''}{s}", "dim") for i, s in enumerate(f.chain)]
        lines.append(Text(f"    fix: {f.fix}", "green"))
        parts.append(Group(*lines))
    return parts


def summary(result: AuditResult) -> str:
    """One line: counts of entries, findings by severity, unresolved calls, unreadable files."""
    counts = Counter(f.severity for f in result.findings)
    on_loop = sum(e.runs_on == "event loop" for e in result.entries)
    found = ", ".join(f"{counts[s]} {s}s" for s in ("error", "warning", "hint")) or "no findings"
    return (
        f"{result.files} files, {len(result.entries)} entry points ({on_loop} on the event loop); "
        f"{found}; {len(result.unresolved)} calls on the loop not resolved; "
        f"{len(result.problems)} files not analysed"
    )


def print_text(result: AuditResult, console: Console) -> None:
    """Print the inventory, the findings, the unresolved calls and the unreadable files."""
    console.print(inventory(result))
    for part in findings_text(result):
        console.print(part)
    if result.unresolved:
        console.print(Text("Calls on the event loop the audit could not resolve:", "bold"))
        for u in result.unresolved:
            console.print(Text(f"    {u.where} in {u.function}: {u.text}", "dim"))
    for problem in result.problems:
        console.print(Text(f"not analysed: {problem.path}: {problem.reason}", "yellow"))
    console.print(summary(result))


def to_json(result: AuditResult) -> str:
    """The JSON document: `entries`, `findings`, `unresolved`, `problems`, `files`."""
    return json.dumps(result.to_json(), indent=1)
