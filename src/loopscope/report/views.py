"""Each run's numbers, worded and formatted for the HTML template.

The template only lays out what is here; every figure comes from `loopscope.trace.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loopscope.measure.failures import Failure, status_counts
from loopscope.report import failures as failing
from loopscope.report.explain import explain
from loopscope.report.palette import STATE_COLOURS, STATE_LABELS
from loopscope.report.simulated import describe_note
from loopscope.report.words import (
    accept_queue_sentence,
    executor_line,
    format_duration,
    place,
    probe_losses,
    unseen_note,
    verdict_text,
    worker_sentences,
)
from loopscope.trace.analysis import (
    has_server_data,
    latency_percentiles,
    loop_blocks,
    loop_utilisation,
    makespan_ns,
    percentile,
    time_by_state,
    top_loop_blocks,
)
from loopscope.trace.executors import executors
from loopscope.trace.model import Trace
from loopscope.trace.processes import accept_queue_stats, worker_spread
from loopscope.trace.record import WSGI_LOOP
from loopscope.trace.saturation import (
    pool_saturation,
)
from loopscope.trace.verdicts import (
    verdicts,
)

POOL_WAIT_ROWS = 10
"""At most this many per-request token waits are listed, longest first."""


@dataclass(frozen=True)
class RunView:
    """One run as the template shows it: heading facts, explanation, verdicts and table rows."""

    mode: str
    source: str
    client_only: bool
    facts: list[tuple[str, str]]
    notes: list[str]
    explanation: str
    verdicts: list[dict[str, str]]
    requests: int
    makespan: str
    p50: str
    p99: str
    loop_busy: str
    block_count: int
    latency: list[dict[str, object]]
    states: list[dict[str, str]]
    blocks: list[dict[str, object]]
    pool: list[tuple[str, str]]
    pool_waits: list[dict[str, str]]
    svg: str
    failed: int = 0
    failure_warning: str | None = None
    failures: tuple[str, ...] = ()
    failure_notes: dict[str, str] = field(default_factory=dict)
    wsgi: bool = False


def run_view(trace: Trace, svg: str, failures: Sequence[Failure] | None = None) -> RunView:
    """The view of `trace`, with its already rendered timeline `svg`; `failures` carry the
    causes of failed requests (default: what the trace alone tells)."""
    run = trace.run
    failed = failing.failures_of(trace, failures)
    notes = {v.route: failing.route_failure_note(trace, v.route, failed) for v in verdicts(trace)}
    latencies = sorted(r.latency_ns for r in trace.requests)
    busy = loop_utilisation(trace)
    # A WSGI server has no event loop and no thread pool: each request holds a worker thread.
    wsgi = run.loop == WSGI_LOOP
    return RunView(
        mode=run.mode,
        source=run.source,
        client_only=not has_server_data(trace),
        facts=_facts(trace),
        notes=[describe_note(note) for note in run.notes],
        explanation=" ".join(explain(trace)),
        verdicts=[
            {
                "route": v.route,
                "kind": v.kind,
                "text": verdict_text(v, wsgi),
            }
            for v in verdicts(trace)
        ],
        requests=len(trace.requests),
        makespan=format_duration(makespan_ns(trace)),
        p50=format_duration(percentile(latencies, 50)) if latencies else "–",
        p99=format_duration(percentile(latencies, 99)) if latencies else "–",
        loop_busy="–" if busy is None else f"{busy:.1%}",
        block_count=len(loop_blocks(trace)),
        latency=[
            {
                "route": route,
                "count": s.count,
                "p50": format_duration(s.p50),
                "p90": format_duration(s.p90),
                "p99": format_duration(s.p99),
                "max": format_duration(s.max),
                "status": status_counts(trace.requests, route),
            }
            for route, s in latency_percentiles(trace).items()
        ],
        states=_states(trace),
        blocks=[
            {
                "where": place(g.where, g.inner),
                "where_full": g.where,
                "kind": g.kind,
                "count": g.count,
                "total": format_duration(g.total_ns),
                "longest": format_duration(g.longest_ns),
                "cpu": "–" if g.cpu_ns is None else format_duration(g.cpu_ns),
                "wait": "–" if g.wait_ns is None else format_duration(g.wait_ns),
                "routes": ", ".join(g.routes) or "–",
                "delayed": g.delayed,
            }
            for g in top_loop_blocks(trace)
        ],
        pool=[] if wsgi else _pool(trace),
        pool_waits=[] if wsgi else _pool_waits(trace),
        svg=svg,
        failed=failing.failed_count(trace),
        failure_warning=failing.failure_warning(trace),
        failures=tuple(failing.failure_line(f) for f in failed),
        failure_notes={route: note for route, note in notes.items() if note},
        wsgi=wsgi,
    )


def _facts(trace: Trace) -> list[tuple[str, str]]:
    run = trace.run
    wsgi = run.loop == WSGI_LOOP
    facts = [
        ("app", run.app or "–"),
        ("server", f"{run.server}, {run.http}, {run.workers} worker{'s' * (run.workers != 1)}"),
        ("loop", "none (WSGI)" if wsgi else run.loop),
        (
            ("threads", f"{run.threads or 1} per worker")
            if wsgi
            else (
                "thread pool",
                "–" if run.threads is None else f"{run.threads} token{'s' * (run.threads != 1)}",
            )
        ),
        ("I/O per request", "–" if run.io_ms is None else f"{run.io_ms:g} ms"),
        ("users", str(run.users)),
    ]
    if run.scenario:
        facts.append(("scenario", run.scenario))
    if run.block_ms is not None:
        facts.append(("loop-block threshold", f"{run.block_ms:g} ms"))
    if run.source == "measured":
        probe = "precise" if run.precise else "watchdog or none"
        facts.append(("probe", "WSGI middleware" if wsgi else probe))
        unseen = unseen_note(run)
        if unseen:
            facts.append(("not seen", unseen))
        losses = probe_losses(run)
        if losses is not None:
            facts.append(("probe losses", losses))
        errors = run.probe.get("probe_errors", 0)
        if errors:
            causes = "; ".join(f"{f.hook}: {f.error} ×{f.count}" for f in run.probe_failures)
            facts.append(("probe failures", f"{errors} ({causes})" if causes else str(errors)))
    spread = worker_spread(trace)
    if spread is not None and spread.worth_telling:
        facts.append(("worker processes", " ".join(worker_sentences(spread))))
    queue = accept_queue_stats(trace)
    if queue is not None:
        facts.append(("accept queue", accept_queue_sentence(queue)))
    if run.python:
        facts.append(("Python", run.python))
    return facts


def _states(trace: Trace) -> list[dict[str, str]]:
    totals = time_by_state(trace)
    whole = sum(totals.values())
    return [
        {
            "state": state,
            "label": STATE_LABELS[state],
            "colour": STATE_COLOURS[state],
            "total": format_duration(total),
            "share": f"{total / whole:.1%}",
        }
        for state, total in totals.items()
        if total > 0
    ]


def _pool(trace: Trace) -> list[tuple[str, str]]:
    pool = pool_saturation(trace)
    rows = [(f"executor `{u.name}`", executor_line(u)) for u in executors(trace)]
    if not pool.used:
        return rows
    return [
        ("tokens", "–" if pool.total_tokens is None else str(pool.total_tokens)),
        ("calls", str(pool.calls)),
        ("peak tokens borrowed", str(pool.peak_borrowed)),
        ("peak tasks waiting for a token", str(pool.peak_waiting)),
        ("time with every token in use", format_duration(pool.full_ns)),
        *rows,
    ]


def _pool_waits(trace: Trace) -> list[dict[str, str]]:
    waited = [w for w in pool_saturation(trace).per_request if w.waits]
    waited.sort(key=lambda w: -w.max_wait_ns)
    return [
        {
            "request": w.request_id,
            "route": w.route,
            "text": f"{w.waits}× up to {format_duration(w.max_wait_ns)}",
        }
        for w in waited[:POOL_WAIT_ROWS]
    ]
