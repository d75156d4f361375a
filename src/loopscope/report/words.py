"""Every sentence fragment loopscope says about a trace, and the one set of thresholds that
decides when a number is worth a sentence.

`loopscope.trace` returns kinds and numbers; the console, the HTML report and the explanations
turn them into words here, so that they never advise differently.
"""

from __future__ import annotations

from loopscope.trace.analysis import UNKNOWN_WHERE
from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT, FIX_UNKNOWN
from loopscope.trace.verdicts import Verdict

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


# --- bench: server models under open-loop load (`loopscope bench`) ---

LITTLE_TOLERANCE = 0.15
"""Little's law holds at a point when the sampled in-flight count and rate × latency agree
within this share (sampling every 10 ms and answered-only latencies leave a few %)."""

_HOLDERS = {
    "worker": ("worker", "workers", "each serving one request at a time"),
    "thread": ("thread", "threads", "each serving one request at a time"),
    "token": ("thread-pool token", "thread-pool tokens", "one per request in the pool"),
    "loop": ("event loop", "event loops", "each blocked for the whole request"),
}


def capacity_text(server: str, mode: str, slots: int | None, holder: str, queue: str,
                  io_ms: float) -> str:  # fmt: skip
    """Why a model saturates where it does, from the model alone: "gunicorn-sync:2 (blocking)
    has 2 workers, each serving one request at a time; with 100 ms of I/O per request it serves
    at most 2 / 0.1 s = 20 req/s; past that the accept queue grows without bound"."""
    if slots is None or io_ms <= 0:
        return (
            f"{server} ({mode}) awaits its {io_ms:g} ms of I/O with the loop free, so the model "
            "sets no bound on concurrent requests: the CPU each request costs (and the client) "
            "bounds it"
        )
    one, many, how = _HOLDERS.get(holder, (holder, holder + "s", ""))
    noun = one if slots == 1 else many
    io_s = io_ms / 1000
    return (
        f"{server} ({mode}) has {slots} {noun}, {how}; with {io_ms:g} ms of I/O per request "
        f"it serves at most {slots} / {io_s:g} s = {slots / io_s:g} req/s; past that the {queue} "
        "grows without bound"
    )


def saturation_text(rate: float | None, achieved: float | None, top_rate: float) -> str:
    """Where a curve saturated, as measured (`rate` None: it kept up everywhere)."""
    if rate is None or achieved is None:
        return f"kept up with every rate offered (up to {top_rate:g} req/s)"
    return f"saturated at {rate:g} req/s offered: it served {achieved:.1f} req/s"


def fell_behind_text(lag_p99_ms: float) -> str:
    """What is said instead of a point's percentiles when the driver fell behind."""
    return (
        f"not reported: the load driver fell behind (99% of sends within {lag_p99_ms:.0f} ms "
        "of schedule), so its latencies would measure the driver. Use fewer --connections or "
        "more --drivers"
    )


def little_text(measured: float, predicted: float | None) -> str:
    """Little's law at a point: in-flight measured against rate × latency."""
    if predicted is None:
        return "Little's law: no answered request to check it with"
    off = abs(measured - predicted) / max(predicted, 1e-9)
    verdict = "holds" if off <= LITTLE_TOLERANCE else "does NOT hold"
    return (
        f"Little's law {verdict}: {measured:.1f} in flight (sampled) vs rate × latency = "
        f"{predicted:.1f} ({off:.0%} apart)"
    )
