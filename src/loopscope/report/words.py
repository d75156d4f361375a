"""Every sentence fragment loopscope says about a trace, and the one set of thresholds that
decides when a number is worth a sentence.

`loopscope.trace` returns kinds and numbers; the console, the HTML report and the explanations
turn them into words here, so that they never advise differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from loopscope.trace.analysis import UNKNOWN_WHERE, BlockGroup
from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT, FIX_UNKNOWN
from loopscope.trace.verdicts import Verdict

if TYPE_CHECKING:  # the pytest plugin's records, read here only to be put in words
    from loopscope.pytest_plugin.judge import Judgement
    from loopscope.pytest_plugin.summary import SuiteSummary

NOT_SAMPLED = "a line not sampled (no stack sample caught the loop while it was stuck)"
"""What is said where no stack sample named a line: never a guess."""

MAIN_STORY_SHARE = 0.25
"""Loop blocks that add up to this share of the run's makespan are the run's main story: the
summary leads with them."""


def format_duration(ns: int) -> str:
    """`ns` in words a reader takes in at a glance: `0.35 ms`, `4.2 ms`, `850 ms`, `2.9 s`."""
    ms = ns / 1e6
    if ns == 0:
        return "0 ms"
    # 999.7 ms reads as "1.0 s", not "1000 ms": the unit switches where the rounding would.
    if ms >= 999.5:
        return f"{ms / 1000:.1f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def short_where(where: str | None) -> str:
    """`where` for people: an absolute path cut to its last directory and file
    (`/srv/app/shop/repo.py:7` → `shop/repo.py:7`); other values unchanged."""
    if not where or not (where.startswith("/") or where[1:3] in (":\\", ":/")):
        return where or UNKNOWN_WHERE
    parts = where.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def place(where: str | None, inner: str | None) -> str:
    """A block's place for people: `app/auth.py:12 → argon2/low_level.py:102`."""
    shown = short_where(where)
    return f"{shown} → {inner}" if inner else shown


def block_kind(cpu_bound: bool | None, waits_on_threads: bool, gc: bool) -> str:
    """A group of loop blocks' kind in a word or two: `CPU`, `CPU (threads)`, `I/O wait`."""
    if gc:
        return "gc"
    if cpu_bound:
        return "CPU"
    if waits_on_threads:
        return "CPU (threads)"
    return "I/O wait" if cpu_bound is False else "?"


# The fix for each kind of loop block: the phrases `audit` findings lead with too
# (`loopscope.trace.fixes`), so a measured block and a found call never advise differently.
FIXES = {
    "cpu-bound": FIX_CPU,
    "cpu-in-threads": "CPU work in other threads: offload the call (run_in_threadpool)",
    "io-wait": FIX_IO_WAIT,
    "blocks-loop": FIX_UNKNOWN,
}


def pool_part_name(func: str) -> str:
    """A function that ran in the pool, named for people: `get_jwt_strategy`, or "response
    validation" for FastAPI's second trip of a `def` endpoint."""
    if func.startswith("fastapi.") and ("validate" in func or "serialize" in func):
        return "response validation (FastAPI)"
    return func.rsplit(".", 1)[-1]


def pool_parts(verdict: Verdict) -> str:
    """Which parts of a route ran in the thread pool, the rest having run on the event loop:
    `in the thread pool: get_jwt_strategy (users.py:42) ×2, the rest on the event loop`."""
    if not verdict.in_pool:  # the pool was seen in segments only (the calls were not kept)
        return "runs in the thread pool"
    parts = []
    for part in verdict.in_pool:
        at = f" ({short_where(part.where)})" if part.where else ""
        parts.append(f"{pool_part_name(part.func)}{at} ×{part.count}")
    return f"in the thread pool: {', '.join(parts)}; the rest on the event loop"


def verdict_text(verdict: Verdict) -> str:
    """One route's verdict in plain words, with the fix where there is one."""
    threshold = f" ({verdict.block_ms:g} ms)" if verdict.block_ms else ""
    total = format_duration(verdict.total_ns)
    kind = verdict.kind
    if kind in ("cpu-bound", "cpu-in-threads", "io-wait", "blocks-loop", "gc"):
        how = (
            f"1 time, {total}" if verdict.count == 1 else f"{verdict.count} times, {total} in total"
        )
        at = place(verdict.where, verdict.inner) if verdict.where else NOT_SAMPLED
        if kind == "gc":
            return f"garbage collection held the loop during this route ({how})"
        if kind == "cpu-bound":
            return f"CPU-bound at {at} ({how}) — {FIXES[kind]}"
        if kind == "cpu-in-threads":
            return (
                f"blocks the event loop at {at} ({how}), waiting while other threads of the "
                f"process computed — {FIXES[kind]}"
            )
        return f"blocks the event loop at {at} ({how}) — {FIXES[kind]}"
    if kind == "pool-wait":
        times = "once" if verdict.count == 1 else f"{verdict.count} times"
        longest = format_duration(verdict.longest_ns)
        return (
            f"{pool_parts(verdict)}; waited for a token {times} (up to {longest}): "
            "raise the limiter or make it async"
        )
    if kind == "thread-pool":
        return f"no loop blocks over the threshold{threshold}; {pool_parts(verdict)}"
    if kind == "event-loop":
        return f"runs on the event loop; no loop blocks over the threshold{threshold}"
    return "client view only: no server-side data was recorded for this route"


# The pytest plugin's words (`loopscope.pytest_plugin`): a failed test, and the suite's summary.


def _count(n: int, thing: str) -> str:
    """`1 block`, `3 blocks`."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


_KIND_WORDS = {"cpu-bound": "CPU", "cpu-in-threads": "CPU (threads)", "io-wait": "I/O wait"}


def block_split(group: BlockGroup) -> str:
    """How long blocks held the loop and what the loop thread did: `55 ms: CPU 0.3 ms, waiting
    54 ms` (and the time it waited for a CPU on a busy machine, where that was measured)."""
    head = format_duration(group.total_ns)
    if group.count > 1:
        longest = format_duration(group.longest_ns)
        head = f"{group.count} blocks, {head} in total (longest {longest})"
    if group.cpu_ns is None or group.wait_ns is None:
        return f"{head}: CPU time not measured"
    text = f"{head}: CPU {format_duration(group.cpu_ns)}, waiting {format_duration(group.wait_ns)}"
    if group.runnable_ns:
        text += f", waiting for a CPU {format_duration(group.runnable_ns)}"
    return text


def guard_report(judgement: Judgement, *, warn: bool) -> list[str]:
    """A test whose requests blocked the loop: per route and place, the verdict and fix of
    `loopscope trace`, CPU against waiting, the stack, and how to allow a known block."""
    ms = f"{judgement.block_ms:g} ms"
    lines = [
        f"loopscope: requests of this test blocked the event loop for longer than {ms}"
        + (" (warn mode: the test passes)" if warn else ""),
    ]
    for place in judgement.blocking:
        lines += ["", f"{place.verdict.route}: {verdict_text(place.verdict)}"]
        lines.append(f"    {block_split(place.group)}")
        if place.stack:
            lines.append("    stack, innermost last:")
            lines += [f"      {frame}" for frame in place.stack]
    allowed = sum(p.group.count for p in judgement.allowed)
    if allowed:
        lines += ["", f"{_count(allowed, 'more loop block')} allowed by @pytest.mark.loopscope."]
    where = next((p.group.where for p in judgement.blocking if p.group.where != UNKNOWN_WHERE), "")
    example = f'allow=["{where}"]' if where else "allow_block_ms=..."
    lines += ["", f"A known, accepted block can be allowed: @pytest.mark.loopscope({example})."]
    return lines


def guard_marker_usage(args: Sequence[object], bad: Sequence[str]) -> str:
    """The error for a wrong `@pytest.mark.loopscope(...)`."""
    what = f"positional arguments {list(args)!r}" if args else f"{', '.join(bad)}"
    return (
        f"@pytest.mark.loopscope takes allow_block_ms=<number> and allow=['path:line', ...] "
        f"as keywords; got {what}."
    )


def guard_warned_test(nodeid: str) -> str:
    """The heading of one warned test in the terminal summary (warn mode)."""
    return f"{nodeid} blocked the event loop (warn mode):"


def guard_wrote(count: int, path: str) -> str:
    """Where the tests' traces went."""
    return f"Wrote {count} test traces to {path} (render them with `loopscope report {path}`)."


def guard_summary(summary: SuiteSummary, unwatched: Sequence[str]) -> list[str]:
    """The suite's loop blocks per route and place, and the routes that waited longest for
    the loop, for the terminal summary."""
    lines = [
        f"loop-block threshold {summary.block_ms:g} ms; {_count(summary.watched, 'test')} "
        f"watched, {summary.with_requests} made requests ({_count(summary.requests, 'request')}"
        f"); {_count(len(summary.broke), 'test')} blocked the loop",
    ]
    places = summary.worst_places()
    lines.append(
        "loop blocks by route and place, across the suite:" if places else "no loop blocks"
    )
    for p in places:
        allowed = f", {p.allowed} allowed" if p.allowed else ""
        lines.append(
            f"  {p.route} at {short_where(p.where)}: {_KIND_WORDS.get(p.kind, 'blocking')}, "
            f"{_count(p.count, 'block')} in {_count(len(p.tests), 'test')}, "
            f"{format_duration(p.total_ns)} in total "
            f"(longest {format_duration(p.longest_ns)}){allowed}"
        )
    ready = summary.slowest_ready()
    if ready:
        lines.append("routes that waited longest for the loop (ready: woken, the loop busy):")
    for r in ready:
        lines.append(
            f"  {r.route}: up to {format_duration(r.longest_ns)} in one request, "
            f"{format_duration(r.total_ns)} over {_count(r.requests, 'request')}"
        )
    if summary.requests and not summary.precise:
        lines.append("ready times were not measured where the loop was not asyncio's (uvloop).")
    if summary.minor:
        lines.append(
            f"{_count(summary.minor, 'loop block')} just over the threshold were put down to a "
            "busy machine (the loop thread waited for a CPU, or nothing saw inside them): "
            "not judged."
        )
    if summary.warmup:
        lines.append(
            f"{_count(summary.warmup, 'loop block')} in an app's first request, inside libraries "
            "only (FastAPI and pydantic build validators on first use), were taken as warm-up: "
            "not judged."
        )
    if summary.outside:
        lines.append(
            f"{_count(summary.outside, 'loop block')} outside any request (a lifespan, a test's "
            "own code on the loop) were not judged."
        )
    if unwatched:
        lines.append(
            f"{_count(len(unwatched), 'test')} not watched: a loopscope probe was installed "
            "already."
        )
    return lines
