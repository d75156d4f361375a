"""Every sentence fragment loopscope says about a trace, and the one set of thresholds that
decides when a number is worth a sentence.

`loopscope.trace` returns kinds and numbers; the console, the HTML report and the explanations
turn them into words here, so that they never advise differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from loopscope.trace.analysis import UNKNOWN_WHERE, BlockGroup
from loopscope.trace.constants import AIOSQLITE_EXECUTOR
from loopscope.trace.executors import ExecutorUse, ThreadWork
from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT, FIX_UNKNOWN
from loopscope.trace.model import Run
from loopscope.trace.processes import QueueStats, WorkerShare, WorkerSpread
from loopscope.trace.saturation import POOL_WAIT_NOTICE_NS
from loopscope.trace.verdicts import Verdict

THREADS_NAMED = 3
"""A verdict names at most this many of a route's threads."""


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


def times(ratio: float) -> str:
    """A measured ratio as measured, never rounded into a vague word: `1.01×`, `2.4×`, `12×`."""
    if ratio >= 10:
        return f"{ratio:.0f}×"
    if ratio >= 1:
        return f"{ratio:.2f}×" if ratio < 1.1 else f"{ratio:.1f}×"
    return f"{ratio:.2f}×"


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


def thread_waits(work: tuple[ThreadWork, ...]) -> str:
    """What a route waited on in executors' threads, per request that used each:
    "waits 120 ms in thread `reports_0` (executor `reports`)"; with the longest wait for a free
    thread where it is worth a word."""
    said = []
    for w in work:
        threads = "thread" if len(w.threads) == 1 else "threads"
        if w.executor == AIOSQLITE_EXECUTOR:
            # Threads named `Thread-7 (_connection_worker_thread)`: one per connection.
            where = f"{len(w.threads)} connection {threads}"
        else:
            names = ", ".join(f"`{t}`" for t in w.threads[:THREADS_NAMED])
            if len(w.threads) > THREADS_NAMED:
                names += f" and {len(w.threads) - THREADS_NAMED} more"
            where = f"{threads} {names}"
        text = f"waits {format_duration(w.per_request_ns)} in {where} (executor `{w.executor}`)"
        if w.longest_wait_ns >= POOL_WAIT_NOTICE_NS:
            text += f" after up to {format_duration(w.longest_wait_ns)} waiting for a free thread"
        said.append(text)
    return "; ".join(said)


def executor_line(use: ExecutorUse) -> str:
    """One executor in the thread-pool section: `reports: 2 threads, 8 calls, peak 2 busy, 3
    waited for a free thread (up to 118 ms)`."""
    if use.name == AIOSQLITE_EXECUTOR:
        capacity = f"1 thread per connection, {len(use.threads)} connections"
    else:
        capacity = "? threads" if use.capacity is None else _count(use.capacity, "thread")
    waited = (
        f"{use.waits} waited for a free thread (up to {format_duration(use.longest_wait_ns)})"
        if use.waits
        else "none waited for a free thread"
    )
    return f"{capacity}, {_count(use.calls, 'call')}, peak {use.peak_busy} busy, {waited}"


def _count(n: int, noun: str) -> str:
    """`1 block`, `3 blocks`."""
    return f"{n} {noun}{'s' * (n != 1)}"


def unseen_note(run: Run) -> str | None:
    """What the probe could not see under uvloop, counted; `None` elsewhere."""
    if run.loop != "uvloop" or not run.precise:
        return None
    blocks = run.probe.get("unseen_blocks", 0)
    found = (
        f"{_count(blocks, 'loop block')} ({format_duration(run.probe.get('unseen_block_ns', 0))}) "
        "lay outside every task step"
        if blocks
        else "no loop block lay outside every task step"
    )
    return (
        "Under uvloop only task steps are timed; callbacks outside tasks (protocols, "
        f"transports, timers) are seen only by the watchdog: {found}."
    )


def probe_losses(run: Run) -> str | None:
    """What the probe could not record, by cause; `None` when it recorded everything.

    Two causes, never merged: events dropped past its memory cap (the budget was spent), and
    events a hook did not record after one of the probe's own failures (the budget was not
    spent; the hook skipped the rest of its chunk).
    """
    dropped = run.probe.get("dropped_events", 0)
    unrecorded = run.probe.get("unrecorded_events", 0)
    errors = run.probe.get("probe_errors", 0)
    if not (dropped or unrecorded or errors):
        return None
    parts = []
    if dropped:
        parts.append(f"{_count(dropped, 'event')} dropped past the memory cap")
    if unrecorded:
        parts.append(f"{_count(unrecorded, 'event')} not recorded after a probe failure")
    parts.append(_count(errors, "probe error"))
    return ", ".join(parts)


WSGI_VERDICT = "runs in one worker thread from start to end (a WSGI server: no event loop)"
"""A route's verdict in a WSGI server, where the thread pool's words do not apply."""


def verdict_text(verdict: Verdict, wsgi: bool = False) -> str:
    """One route's verdict in plain words, with the fix where there is one; `wsgi`: the run
    was a WSGI server's (no event loop, no thread pool)."""
    if wsgi and verdict.kind == "thread-pool":
        return WSGI_VERDICT
    text = _verdict_text(verdict)
    if verdict.threads and verdict.kind != "offloaded":
        text += f"; {thread_waits(verdict.threads)}"
    return text


def _verdict_text(verdict: Verdict) -> str:
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
    if kind == "offloaded":
        return f"{thread_waits(verdict.threads)}; no loop blocks over the threshold{threshold}"
    if kind == "event-loop":
        return f"runs on the event loop; no loop blocks over the threshold{threshold}"
    return "client view only: no server-side data was recorded for this route"


UNEVEN_SPREAD = 1.5
"""A worker that served this many times an even share of the requests makes the spread
uneven: worth a sentence."""


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.2f} s"


def checkpoint_sentence(worker: WorkerShare) -> str:
    """What is known of a worker whose probe left only a checkpoint, and as of when."""
    taken = worker.checkpoint_ns or 0
    when = f"at {_seconds(taken)}" if taken >= 0 else "before the run began"
    gap = ""
    if worker.ended_ns is not None:
        before = _seconds(max(0, worker.ended_ns - taken))
        gap = f", {before} before it died ({_seconds(worker.ended_ns)})"
    return (
        f"The server-side view of worker pid {worker.pid} is as of its probe's last "
        f"checkpoint, taken {when}{gap}; it wrote no final record: what it did after the "
        "checkpoint shows the client's view only."
    )


def worker_sentences(spread: WorkerSpread) -> list[str]:
    """How the requests spread over the worker processes, and which died and were replaced:
    `Requests served per worker process: pid 812: 24, pid 813: 16.`"""
    workers = spread.workers

    def tag(worker: WorkerShare) -> str:
        if worker.died:
            return " (died)"
        return " (replacement)" if worker in spread.replacements else ""

    counts = ", ".join(f"pid {w.pid}: {w.served}{tag(w)}" for w in workers)
    sentences = [f"Requests served per worker process: {counts}."]
    alive_from_start = [w for w in workers if not w.died and w not in spread.replacements]
    if len(alive_from_start) > 1 and spread.busiest_ratio >= UNEVEN_SPREAD:
        busiest = max(workers, key=lambda w: w.served)
        total = sum(w.served for w in workers)
        sentences.append(
            f"Uneven spread: pid {busiest.pid} served {busiest.served} of {total} "
            f"({spread.busiest_ratio:.1f}× an even share). The workers share one listening "
            "socket; the worker whose loop wakes first accepts every connection then waiting, "
            "and a keep-alive connection stays with it."
        )
    for worker in spread.died:
        lost = (
            ""
            if worker.recorded
            else "; its probe record was lost with it: what it served shows the client's view only"
        )
        sentences.append(f"Worker pid {worker.pid} died at {_seconds(worker.ended_ns or 0)}{lost}.")
    sentences += [checkpoint_sentence(w) for w in spread.checkpointed]
    for worker in spread.replacements:
        sentences.append(
            f"Worker pid {worker.pid} started at {_seconds(worker.started_ns or 0)}, after the "
            f"run began (a replacement), and served {worker.served} requests."
        )
    if spread.unattributed:
        sentences.append(
            f"{spread.unattributed} requests were seen by no worker's probe (the client's view "
            "only)."
        )
    return sentences


def accept_queue_sentence(stats: QueueStats) -> str:
    """The accept queue as sampled: `peak 5 connections waiting at 0.53 s (backlog 2048)`."""
    every = f", sampled every {stats.period_ms:g} ms" if stats.period_ms else ""
    if stats.peak == 0:
        return (
            f"Accept queue (kernel{every}): always empty: the server accepted every connection "
            "within a sampling period; requests that waited did so on accepted connections."
        )
    return (
        f"Accept queue (kernel{every}): peak {stats.peak} connection"
        f"{'s' * (stats.peak != 1)} waiting at {_seconds(stats.peak_at_ns)} (backlog "
        f"{stats.backlog}); not empty for {format_duration(stats.nonempty_ns)}."
    )


def waited_before_the_app(peak_in_queue: int | None) -> str:
    """Where requests that the app had not yet seen waited, as far as was measured: in the
    accept queue (`peak_in_queue` connections there at most), or, where the sampled queue was
    empty, on connections the server had accepted but not yet read; `None`: not sampled, the
    seed's word."""
    if peak_in_queue is None:
        return "in the accept queue"
    if peak_in_queue == 0:
        return (
            "unread on connections the server had already accepted (the kernel's accept queue, "
            "sampled, was empty meanwhile)"
        )
    plural = "s" * (peak_in_queue != 1)
    return f"in the accept queue (up to {peak_in_queue} connection{plural} there, measured)"


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
        f"not reported: the load driver fell behind (99% of requests issued within "
        f"{lag_p99_ms:.0f} ms of their intended time), so its latencies would measure the "
        "driver (a wait for a connection the server keeps busy is the server's queue, never "
        "this). Use fewer --connections or more --drivers"
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


# The pytest plugin's words (`loopscope.pytest_plugin`): a failed test, and the suite's summary.


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
        lines.append("ready times were not measured where the probe had only its heartbeat.")
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
