"""The console rendering: the demo's comparison table and its one-line readings."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from loopscope.measure.failures import Failure, status_counts
from loopscope.report import failures as failing
from loopscope.report.executors import executor_lines
from loopscope.report.simulated import describe_note
from loopscope.report.words import (
    MAIN_STORY_SHARE,
    accept_queue_sentence,
    block_kind,
    format_duration,
    place,
    probe_losses,
    times,
    verdict_text,
    worker_sentences,
)
from loopscope.trace import analysis, processes, saturation, verdicts
from loopscope.trace.model import Trace
from loopscope.trace.record import WSGI_LOOP

NS_PER_S = 1_000_000_000


def finish_times_s(trace: Trace) -> list[float]:
    """Each request's finish time in seconds from the run's start, in request order."""
    span = analysis.span_ns(trace)
    t0 = span[0] if span else 0
    return [(r.done_ns - t0) / NS_PER_S for r in trace.requests]


def makespan_s(trace: Trace) -> float:
    """First client send to last client done, in seconds."""
    return analysis.makespan_ns(trace) / NS_PER_S


def what_happened(trace: Trace) -> str:
    """One sentence, from the measured times, on how the requests shared the server."""
    n = len(trace.requests)
    span = makespan_s(trace)
    io_s = (trace.run.io_ms or 0) / 1000
    if n == 0:
        return "no requests were sent"
    failed = sum(1 for r in trace.requests if r.status is None)
    note = f" ({failed} got no answer)" if failed else ""
    # Waves of I/O time only mean something when the I/O dwarfs the per-request overhead.
    if io_s < 0.05:
        return f"{n} requests finished within {span:.2f} s{note}"
    ratio = times(span / io_s)
    waves = max(1, round(span / io_s))
    cause = _cause(trace)
    if waves == 1:
        return f"all {n} overlapped: the last finished at {span:.2f} s, {ratio} the I/O time{note}"
    if waves >= n:
        done = ", ".join(f"{t:.2f}" for t in sorted(finish_times_s(trace)))
        return (
            f"requests ran one after another (finished at {done} s, the last at {ratio} the "
            f"I/O time){cause}{note}"
            if len(set(round(t / io_s) for t in finish_times_s(trace))) > 1
            else f"requests were served one at a time; all finished at {span:.2f} s "
            f"({ratio} the I/O time){cause}{note}"
        )
    return (
        f"requests ran in {waves} waves; the last finished at {span:.2f} s ({ratio} the I/O "
        f"time){cause}{note}"
    )


def _cause(trace: Trace) -> str:
    # Only a cause that explains a good share of the run is worth naming in one line.
    blocks = [b for b in trace.loop_blocks if b.kind == "code"]
    blocked_s = sum(b.duration_ns for b in blocks) / NS_PER_S
    if blocks and blocked_s >= MAIN_STORY_SHARE * makespan_s(trace):
        return f": the event loop was blocked {len(blocks)}× for {blocked_s:.2f} s"
    waited = max((s.waiting for s in trace.pool_samples), default=0)
    if waited:
        tokens = max(s.total for s in trace.pool_samples)
        noun = "token" if tokens == 1 else "tokens"
        return f": the thread pool had {tokens} {noun}; up to {waited} requests waited for one"
    return ""


def demo_table(traces: Sequence[Trace]) -> Table:
    """Mode, makespan, each request's finish time and status, and what happened."""
    simulated = any(t.run.source == "simulated" for t in traces)
    title = "The seed's experiment, measured" + (" and simulated" if simulated else "")
    table = Table(title=title, title_justify="left")
    table.add_column("mode", style="bold")
    table.add_column("makespan", justify="right")
    table.add_column("finished at (s)")
    table.add_column("status")
    table.add_column("what happened")
    for trace in traces:
        times = finish_times_s(trace)
        statuses = sorted({str(r.status or "error") for r in trace.requests})
        table.add_row(
            escape(trace.run.mode)
            + (" [dim](simulated)[/]" if trace.run.source == "simulated" else ""),
            f"{makespan_s(trace):.2f} s",
            _compact(times),
            ", ".join(statuses),
            what_happened(trace),
        )
    return table


def _compact(times: list[float]) -> str:
    if len(times) <= 6:
        return " ".join(f"{t:.2f}" for t in times)
    ordered = sorted(times)
    return f"{ordered[0]:.2f} … {ordered[-1]:.2f} ({len(times)} requests)"


def trace_summary(trace: Trace, failures: Sequence[Failure] | None = None) -> list[RenderableType]:
    """What `loopscope trace` prints: latency per route, failures, loop blocks, the pool, and
    verdicts. `failures` carry the causes from the server's log (default: statuses only)."""
    out: list[RenderableType] = []
    failed = failing.failures_of(trace, failures)
    run = trace.run
    wsgi = run.loop == WSGI_LOOP
    if not run.probe:
        mode = "none (client view only)"
    elif wsgi:
        mode = "WSGI middleware (no event loop)"
    elif run.precise:
        mode = "precise"
    else:
        mode = "watchdog only (uvloop: callbacks cannot be timed)"
    if run.source == "simulated":
        mode = "none: [bold yellow]simulated[/] by loopscope's model, not measured"
    out.append(
        f"[bold]{escape(run.app)}[/] on {escape(run.server)} ({escape(run.loop)}, "
        f"{escape(run.http)}, {run.workers} worker(s), {run.threads} "
        f"{'thread(s) per worker' if wsgi else 'thread tokens'}), "
        f"{len(trace.requests)} requests, probe: {mode}"
    )
    spread = processes.worker_spread(trace)
    if spread is not None and spread.worth_telling:
        out.extend(escape(sentence) for sentence in worker_sentences(spread))
    queue = processes.accept_queue_stats(trace)
    if queue is not None:
        out.append(escape(accept_queue_sentence(queue)))
    latency = Table(title="Latency per route (client side)", title_justify="left")
    for column in ("route", "count", "p50", "p90", "p99", "max", "status"):
        latency.add_column(
            column,
            justify="left" if column in ("route", "status") else "right",
            overflow="fold" if column in ("route", "status") else "ellipsis",
        )
    for route, stats in analysis.latency_percentiles(trace).items():
        latency.add_row(
            escape(route),
            str(stats.count),
            *(format_duration(v) for v in (stats.p50, stats.p90, stats.p99, stats.max)),
            status_counts(trace.requests, route),
        )
    out.append(latency)
    failure_table = failing.failure_table(failed)
    if failure_table is not None:
        out.append(failure_table)
    out.append(_blocks_line(trace))
    groups = analysis.top_loop_blocks(trace)
    if groups:
        table = Table(title="Top loop-block locations", title_justify="left", box=box.SIMPLE_HEAD)
        # A `path:line` is the answer: its column never wraps, so at any width the other
        # column gives way (a place wider than the whole terminal still folds, never crops).
        table.add_column("where (routes)", no_wrap=True, overflow="fold")
        table.add_column("kind, count, total (CPU / waiting)", overflow="fold", ratio=1)
        for g in groups:
            cpu = "?" if g.cpu_ns is None else format_duration(g.cpu_ns)
            wait = "?" if g.wait_ns is None else format_duration(g.wait_ns)
            kind = block_kind(g.cpu_bound, g.waits_on_threads, g.kind == "gc")
            table.add_row(
                escape(place(g.where, g.inner)) + "".join(f"\n  {escape(r)}" for r in g.routes),
                f"{kind}, {g.count}×, {format_duration(g.total_ns)} ({cpu} / {wait})",
            )
        out.append(table)
    pool = saturation.pool_saturation(trace)
    if pool.calls and not wsgi:
        waited = [w for w in pool.per_request if w.waits]
        line = (
            f"Thread pool: {pool.calls} calls, peak {pool.peak_borrowed} of {pool.total_tokens} "
            "tokens in use; "
        )
        if waited and pool.peak_waiting == 0 and trace.pool_samples:
            # The limiter never had a waiter: the time went to handing the call to a thread.
            longest = format_duration(max(w.max_wait_ns for w in waited))
            line += (
                f"no task waited for a token; {len(waited)} requests waited up to {longest} "
                "for a worker thread to pick their call up (the hand-off, a new thread starting)."
            )
        elif waited:
            longest = format_duration(max(w.max_wait_ns for w in waited))
            notice = format_duration(saturation.POOL_WAIT_NOTICE_NS)
            line += (
                f"{len(waited)} requests waited over {notice} for a token (longest {longest}, "
                f"up to {pool.peak_waiting} at once)."
            )
        else:
            line += "no request waited for a token."
        out.append(line)
    out += executor_lines(trace)
    rows = []
    for v in verdicts.verdicts(trace):
        note = failing.route_failure_note(trace, v.route, failed)
        said = escape(verdict_text(v, wsgi))
        rows.append((v.route, said if note is None else f"[bold red]{escape(note)}[/]; {said}"))
    out.append(VerdictTable(rows))
    warning = failing.failure_warning(trace)
    errors_4xx = [r for r in trace.requests if r.status is None or r.status >= 400]
    if warning is not None:
        out.append(f"[bold red]warning:[/] {escape(warning)}")
    elif len(errors_4xx) * 2 >= len(trace.requests) > 0:
        out.append(
            f"[yellow]warning:[/] {len(errors_4xx)} of {len(trace.requests)} requests got "
            "an error status: the timings describe error handling, not the routes' real work."
        )
    for note in run.notes:
        out.append(f"[yellow]note:[/] {escape(describe_note(note))}")
    losses = probe_losses(run)
    if losses is not None:
        out.append(f"[yellow]probe:[/] {escape(losses)}")
    for failure in run.probe_failures:
        out.append(
            f"  probe failure in {escape(failure.hook)} ×{failure.count}: {escape(failure.error)}"
        )
    return out


class VerdictTable:
    """The verdicts, one route per row, laid out for the width they are drawn at.

    A verdict's `path:line` is the answer and is never cut: beside its route where the
    verdict column can hold the longest word of any verdict, else below its route at the
    table's full width (a column that narrow would fold `prod/store.py:12` into `prod/store.p`
    and `y:12`).
    """

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows = rows  # (route, verdict in rich markup)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        route_w = min(max((len(route) for route, _ in self.rows), default=0), width // 3)
        longest = max(
            (len(word) for _, said in self.rows for word in Text.from_markup(said).plain.split()),
            default=0,
        )
        table = Table(title="Verdicts", title_justify="left", show_header=False)
        # Borders and padding of a two-column table take 7 characters.
        if width - route_w - 7 >= longest:
            table.add_column("route", style="bold", overflow="fold", width=route_w)
            table.add_column("verdict", overflow="fold")
            for route, said in self.rows:
                table.add_row(escape(route), said)
        else:
            table.add_column("route and verdict", overflow="fold")
            for route, said in self.rows:
                table.add_row(Group(Text(route, style="bold"), Padding(said, (0, 0, 0, 2))))
        yield table


def _blocks_line(trace: Trace) -> str:
    if not trace.run.probe:
        return "Loop blocks were not recorded: no probe ran in the server."
    if trace.run.loop == WSGI_LOOP:
        return "No event loop: a WSGI server, each request held one worker thread throughout."
    blocks = [b for b in trace.loop_blocks if b.kind == "code"]
    gc_blocks = [b for b in trace.loop_blocks if b.kind == "gc"]
    threshold = f"{trace.run.block_ms:g} ms" if trace.run.block_ms else "the threshold"
    if not blocks and not gc_blocks:
        return f"The event loop was never blocked for more than {threshold}."
    total = format_duration(sum(b.duration_ns for b in blocks))
    line = f"The event loop was blocked {len(blocks)} times for {total} in total (> {threshold})"
    if gc_blocks:
        gc_total = format_duration(sum(b.duration_ns for b in gc_blocks))
        line += f", plus {len(gc_blocks)} garbage-collection pauses ({gc_total})"
    return line + "."
