"""Routes as recipes of steps: `cpu:2, pool(io:50, cpu:1), await:30`.

A step says what a request's code does and where the time goes:

- `cpu:MS`   Python work: holds a core and its process's GIL (on the loop it holds the loop too)
- `io:MS`    a blocking wait (`time.sleep`, a sync driver): holds its thread, not a core or the GIL
- `db:MS`    a blocking call into a database that works for MS on a core of its own
- `await:MS` a non-blocking wait: the loop is free for others meanwhile
- `adb:MS`   an awaited database call (the DB holds a core, the loop is free)
- `pool(...)`     the steps inside run in anyio's thread pool, after waiting for a token
- `executor(...)` the same in the loop's default `ThreadPoolExecutor` (`asyncio.to_thread`)
- `thread(...)`   the same in a thread of the call's own, with no limit (aiosqlite's thread per
  connection, a driver's I/O thread)

Steps outside `pool(...)`, `executor(...)` and `thread(...)` run on the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from loopscope.errors import UsageError

StepKind = Literal["cpu", "io", "db", "await", "adb"]
PoolKind = Literal["pool", "executor", "thread"]
STEP_KINDS: tuple[StepKind, ...] = ("cpu", "io", "db", "await", "adb")
BLOCKING_KINDS = frozenset({"io", "db"})
"""Steps that hold their thread while they wait."""
AWAIT_KINDS = frozenset({"await", "adb"})
"""Steps that leave the loop free while they wait."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step: its kind and how long it takes, in ms."""

    kind: StepKind
    ms: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.ms:g}"


@dataclass(frozen=True, slots=True)
class PoolStep:
    """Steps in a worker thread: `pool` (anyio's limiter), `executor`, or an own `thread`."""

    kind: PoolKind
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(map(str, self.steps))})"


Item = Step | PoolStep


@dataclass(frozen=True, slots=True)
class Recipe:
    """What one route does, step by step; `route` is its template (`/orders/{id}`)."""

    route: str
    items: tuple[Item, ...]
    method: str = "GET"

    def __str__(self) -> str:
        return format_items(self.items)


def format_items(items: tuple[Item, ...]) -> str:
    """The recipe text that `parse_items` reads back."""
    return ", ".join(map(str, items))


_STEP = re.compile(r"^\s*([a-z]+)\s*:\s*([-+0-9.eE]+)\s*$")
_POOL = re.compile(r"^\s*(pool|executor|thread)\s*\((.*)\)\s*$", re.S)


def parse_items(text: str) -> tuple[Item, ...]:
    """Parse recipe text into steps; a malformed recipe is a `UsageError` naming the bad part."""
    items: list[Item] = []
    for part in _split(text):
        pool = _POOL.match(part)
        if pool:
            inner = [_parse_step(p, text) for p in _split(pool.group(2))]
            if not inner:
                raise UsageError(f"Recipe {text!r}: {pool.group(1)}() needs at least one step.")
            if any(s.kind in AWAIT_KINDS for s in inner):
                raise UsageError(
                    f"Recipe {text!r}: a worker thread cannot await; use io or db inside "
                    f"{pool.group(1)}(...)."
                )
            items.append(PoolStep(pool.group(1), tuple(inner)))  # type: ignore[arg-type]
        else:
            items.append(_parse_step(part, text))
    if not items:
        raise UsageError(f"Recipe {text!r} has no steps; write e.g. 'cpu:2, io:50'.")
    return tuple(items)


def _parse_step(part: str, text: str) -> Step:
    match = _STEP.match(part)
    if not match or match.group(1) not in STEP_KINDS:
        raise UsageError(
            f"Recipe {text!r}: cannot read {part.strip()!r}; a step is KIND:MS with KIND one of "
            f"{', '.join(STEP_KINDS)}, or pool(...), executor(...), thread(...)."
        )
    try:
        ms = float(match.group(2))
    except ValueError:
        raise UsageError(f"Recipe {text!r}: {match.group(2)!r} is not a number of ms.") from None
    if not ms >= 0 or ms == float("inf"):
        raise UsageError(f"Recipe {text!r}: {part.strip()!r} takes a negative or endless time.")
    return Step(match.group(1), ms)  # type: ignore[arg-type]


def _split(text: str) -> list[str]:
    # Split on commas outside parentheses; an unbalanced parenthesis is the user's typo.
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise UsageError(f"Recipe {text!r}: a ')' has no matching '('.")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise UsageError(f"Recipe {text!r}: a '(' is never closed.")
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_route(text: str) -> Recipe:
    """Parse `--route "[METHOD ]/orders/{id}=cpu:2,io:50"` into a `Recipe`."""
    head, sep, body = text.partition("=")
    words = head.split()
    if not sep or not words or not words[-1].startswith("/") or len(words) > 2:
        raise UsageError(
            f"--route {text!r} must look like '/orders/{{id}}=cpu:2,io:50' "
            "(optionally 'POST /orders=...')."
        )
    method = words[0].upper() if len(words) == 2 else "GET"
    return Recipe(route=words[-1], items=parse_items(body), method=method)
