"""Judge one test's trace: which of its requests' loop blocks break the rule, and which the
test's `loopscope` marker allows. Pure: a `Trace` and an `Allowance` in, a `Judgement` out.

A block counts against the test when one of its requests made it, it lasted longer than the
threshold without counting the time the loop thread sat runnable while the machine ran something
else (on a busy CI machine that is not the code's doing; NOTES: wall-clock thresholds mislead),
and it is not garbage collection (no line of the app to change).

A block in which no stack sample caught a line of the app or of a library (none, or only the
test's own line, where the test runs on the app's loop), or whose innermost frame is the
standard library's (a socket write, a thread start, a lock wait), counts only past
`UNSEEN_FACTOR` times the threshold: on a crowded machine, a loop thread waiting for the GIL
that another thread of the test process holds while the OS runs something else (a client in
the same process), or for anyio's new worker thread to be scheduled, looks just like that, and
is no fault of the code. A real wait of the app's there (a `future.result()`) fails past it.

Blocks made outside any request (a lifespan start-up, a test's own code on the loop) are
reported, never failed: the plugin guards requests. A block in an app's first request of the
session with no line of the project on its stack is warm-up (FastAPI and pydantic build
validators on first use, tens of ms on the loop): reported, not failed, as it would fail
whichever test happens to run first.

Each route's blocks at one place get the verdict `loopscope trace` gives them
(`loopscope.trace.verdicts`), so the fix reads the same in both.
"""

from __future__ import annotations

import dataclasses
import os
import sysconfig
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loopscope.trace.analysis import UNKNOWN_WHERE, BlockGroup, group_blocks
from loopscope.trace.model import LoopBlock, Trace
from loopscope.trace.verdicts import Verdict, verdicts

_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep

UNSEEN_FACTOR = 3.0
"""A block with no line of the app or a library caught counts past this many thresholds."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a test's `@pytest.mark.loopscope(...)` allows: blocks up to `block_ms` long
    (`None`: none by length) and blocks at `places` (`path:line`, or `path` for any line)."""

    block_ms: float | None = None
    places: tuple[str, ...] = ()

    def allows(self, block: LoopBlock) -> bool:
        """Whether `block` is allowed by length or by place."""
        if self.block_ms is not None and stuck_ns(block) <= self.block_ms * 1e6:
            return True
        return block.where is not None and any(_same_place(block.where, p) for p in self.places)


def _same_place(where: str, place: str) -> bool:
    """Whether `where` (`app/legacy.py:42`) is at `place`: the same `path:line`, or any line of
    `path` where `place` has no line; `place` may also be the tail of a longer path."""
    path = where.rpartition(":")[0]
    has_line = place.rpartition(":")[2].isdigit()
    candidate = where if has_line else path
    return candidate == place or candidate.endswith("/" + place)


def stuck_ns(block: LoopBlock) -> int:
    """How long `block` held the loop, less the time the loop thread waited for a CPU."""
    return block.duration_ns - (block.runnable_ns or 0)


def over_threshold(block: LoopBlock, block_ms: float, test_file: str | None = None) -> bool:
    """Whether `block` counts as over the threshold (see the module docstring)."""
    limit = block_ms * 1e6
    in_test = test_file is not None and block.where is not None and _in_file(block.where, test_file)
    in_stdlib = bool(block.stack) and block.stack[-1].startswith(_STDLIB)
    if block.where is None or in_test or in_stdlib:
        limit *= UNSEEN_FACTOR
    return stuck_ns(block) > limit


@dataclass(frozen=True, slots=True)
class PlaceBlocks:
    """One route's blocks at one place: `verdict` as `loopscope trace` says it, `group` the
    sums (count, wall, CPU, waiting), `stack` the longest block's short stack."""

    verdict: Verdict
    group: BlockGroup
    stack: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Judgement:
    """One test's loop blocks, sorted: `blocking` break the rule, `allowed` the marker allows,
    `minor` fell under the threshold once the time waiting for a CPU was taken out (or were
    unseen and short, see the module docstring), `gc` were garbage collection, `warmup` were
    library work in an app's first request, and `outside` were made by no request."""

    block_ms: float
    blocking: tuple[PlaceBlocks, ...] = ()
    allowed: tuple[PlaceBlocks, ...] = ()
    minor: tuple[PlaceBlocks, ...] = ()
    gc: tuple[PlaceBlocks, ...] = ()
    warmup: tuple[PlaceBlocks, ...] = ()
    outside: tuple[LoopBlock, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether the test broke the rule."""
        return bool(self.blocking)


def judge(
    trace: Trace,
    block_ms: float,
    allowance: Allowance = Allowance(),
    test_file: str | None = None,
    *,
    first_requests: frozenset[str] = frozenset(),
    in_project: Callable[[str], bool] = lambda path: False,
) -> Judgement:
    """Sort the loop blocks of `trace` (one test's) by the rule; see the module docstring.

    `test_file` (the test module's path from the project root) cuts the stacks below the
    test's own frames: where the test ran on the app's loop (an `AsyncClient`), what called
    the test (pytest, its plugins) is not the app's story. `first_requests` are the ids of the
    requests that were an app's first; `in_project(path)` tells the project's files from the
    libraries' (a place's path).
    """
    requests = {r.id for r in trace.requests}
    sorted_blocks: dict[str, list[LoopBlock]] = defaultdict(list)
    outside: list[LoopBlock] = []
    for block in trace.loop_blocks:
        if block.request_id not in requests:
            outside.append(block)
        elif block.kind == "gc":
            sorted_blocks["gc"].append(block)
        elif not over_threshold(block, block_ms, test_file):
            sorted_blocks["minor"].append(block)
        elif block.request_id in first_requests and not _touches_project(block, in_project):
            sorted_blocks["warmup"].append(block)
        elif allowance.allows(block):
            sorted_blocks["allowed"].append(block)
        else:
            sorted_blocks["blocking"].append(block)
    return Judgement(
        block_ms=block_ms,
        blocking=places(trace, sorted_blocks["blocking"], test_file),
        allowed=places(trace, sorted_blocks["allowed"], test_file),
        minor=places(trace, sorted_blocks["minor"], test_file),
        gc=places(trace, sorted_blocks["gc"], test_file),
        warmup=places(trace, sorted_blocks["warmup"], test_file),
        outside=tuple(outside),
    )


def _touches_project(block: LoopBlock, in_project: Callable[[str], bool]) -> bool:
    """Whether a line of the project's own code is `block`'s place or on its stack."""
    frames = [block.where or ""] + [frame.split(" in ", 1)[0] for frame in block.stack]
    return any(in_project(frame.rpartition(":")[0]) for frame in frames if ":" in frame)


def places(
    trace: Trace, blocks: Iterable[LoopBlock], test_file: str | None = None
) -> tuple[PlaceBlocks, ...]:
    """`blocks` grouped by route and place, longest total first; stacks cut below `test_file`."""
    route_of = {r.id: r.endpoint for r in trace.requests}
    groups: dict[tuple[str, str], list[LoopBlock]] = defaultdict(list)
    for block in blocks:
        groups[(route_of[block.request_id or ""], block.where or UNKNOWN_WHERE)].append(block)
    result = []
    for (route, where), group in groups.items():
        # The trace's own verdict on just these blocks: the same kind, place and fix.
        alone = dataclasses.replace(trace, loop_blocks=group)
        verdict = next(v for v in verdicts(alone) if v.route == route)
        longest = max(group, key=lambda b: b.duration_ns)
        stack = _below(longest.stack, test_file)
        result.append(PlaceBlocks(verdict, group_blocks(where, group, route_of), stack))
    result.sort(key=lambda p: (-p.group.total_ns, p.verdict.route, p.group.where))
    return tuple(result)


def _in_file(frame: str, test_file: str) -> bool:
    """Whether `frame` (`path:line`, maybe ` in func`) is a line of `test_file`."""
    path = frame.split(" in ", 1)[0].rpartition(":")[0]
    return path == test_file or path.endswith("/" + test_file)


def _below(stack: list[str], test_file: str | None) -> tuple[str, ...]:
    """The frames of `stack` (`path:line in func`, innermost last) below the last frame of
    `test_file`; all of them where the test's own code is not on it."""
    if test_file is None:
        return tuple(stack)
    cut = 0
    for i, frame in enumerate(stack):
        if _in_file(frame, test_file):
            cut = i + 1
    return tuple(stack[cut:])
