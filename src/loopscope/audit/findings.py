"""Turn what the walk reached into findings: severity, the chain in words, the fix, suppression.

The fixes lead with the same phrase `trace` verdicts use (`loopscope.trace.fixes`), then say the
three ways out the audit can see: await an async equivalent, offload with `run_in_threadpool`,
or make the entry a plain `def` so FastAPI runs it in the thread pool.
"""

from __future__ import annotations

import re

from loopscope.audit.entries import EntryPoint
from loopscope.audit.index import Function
from loopscope.audit.model import Finding, Severity
from loopscope.audit.reach import Reached
from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT

_IGNORE = re.compile(r"#\s*loopscope:\s*ignore(?:\[(?P<codes>[A-Za-z0-9_, ]+)\])?")
_DEF_MAKES_IT_POOL = frozenset({"route", "dependency", "exception handler", "background task"})
ONCE_KINDS = frozenset({"lifespan", "event handler"})
"""Entries that run once per process (startup/shutdown): a block there delays startup only."""

UNNEEDED_THREAD_HOP = "LS301"


def suppressed(lines: tuple[str, ...], line: int, code: str) -> bool:
    """Whether `# loopscope: ignore` (bare, or naming `code`) is on `line` (1-based)."""
    if not 0 < line <= len(lines):
        return False
    match = _IGNORE.search(lines[line - 1])
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or code in {c.strip() for c in codes.split(",")}


def step(function: Function, line: int, label: str) -> str:
    """One chain step: `path:line label`."""
    return f"{function.module.file.relpath}:{line} {label}"


def fix_for(point: EntryPoint, reached: Reached) -> str:
    """The fix in words for one blocking call reached from `point`."""
    sink = reached.call.sink
    plain_def = ""
    if point.entry.kind in _DEF_MAKES_IT_POOL and point.function.is_async:
        plain_def = (
            f", or make `{point.function.node.name}` a plain `def` (it then runs in the pool)"
        )
    if sink.kind == "cpu":
        return f"CPU-bound: {FIX_CPU} (or `await run_in_threadpool(...)` for short work){plain_def}"
    return (
        f"{FIX_IO_WAIT}: use {sink.alternative} instead, or wrap the call in "
        f"`await run_in_threadpool(...)`{plain_def}"
    )


def finding_for(point: EntryPoint, reached: Reached) -> Finding | None:
    """The finding for one blocking call reached from `point`, `None` when suppressed."""
    call = reached.call
    caller = reached.caller
    start = reached.start
    chain = [step(point.function, point.function.node.lineno, point.function.display)]
    if start is not point.function:
        chain.append(step(start, start.node.lineno, f"{start.display} (decorator wrapper)"))
    chain += [
        step(f, line, callee.display)
        for (f, line), callee in zip(reached.path, reached.callees, strict=True)
    ]
    chain.append(step(caller, call.line, call.qualname))
    lines_to_check = [(caller, call.line), *list(reached.path)]
    for function, line in lines_to_check:
        if suppressed(function.module.file.lines, line, call.sink.code):
            return None
    once = point.entry.kind in ONCE_KINDS
    severity: Severity = "warning" if call.sink.kind == "cpu" or once else "error"
    when = " (once, at startup or shutdown)" if once else ""
    message = (
        f"`{call.qualname}` {call.sink.what} on the event loop{when}, "
        f"reached from {point.entry.kind} {point.entry.name}"
    )
    return Finding(
        code=call.sink.code,
        severity=severity,
        where=f"{caller.module.file.relpath}:{call.line}",
        entry=point.entry.name,
        chain=tuple(chain),
        call=call.qualname,
        fix=fix_for(point, reached),
        message=message,
        flake8_async=call.sink.flake8_async,
    )


def unneeded_hop(point: EntryPoint) -> Finding | None:
    """The hint for a plain `def` route that reaches no blocking call (`None` if suppressed)."""
    function = point.function
    if suppressed(function.module.file.lines, function.node.lineno, UNNEEDED_THREAD_HOP):
        return None
    return Finding(
        code=UNNEEDED_THREAD_HOP,
        severity="hint",
        where=function.where,
        entry=point.entry.name,
        chain=(step(function, function.node.lineno, function.display),),
        call=function.qualname,
        fix=f"make `{function.node.name}` an `async def`: it does no blocking work, and each "
        "request would skip two trips through the thread pool",
        message=f"plain `def` {point.entry.kind} {point.entry.name} runs in the thread pool "
        "but does no blocking work",
    )
