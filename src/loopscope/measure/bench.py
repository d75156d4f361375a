"""`bench` sweeps: every (server model, mode, offered rate) point, measured under open-loop load.

Each point gets a fresh server (so a queue left by one rate never leaks into the next, and the
probe's record, written at shutdown, is that point's alone), a short warm-up, then the
fixed-rate driver in its own process(es). Nothing here renders: `BenchResult` goes to
`report.bench_*` and to JSON (`bench_record`).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopscope import __version__
from loopscope.errors import LoadError, UsageError
from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import RatePlan
from loopscope.load.outcome import LoadOutcome
from loopscope.measure.sampler import ServerSampler
from loopscope.server import ServerProcess
from loopscope.server.models import Capacity, ServerModel
from loopscope.server.models.base import WSGI_APP
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS
from loopscope.trace.merge import build_trace
from loopscope.trace.model import Request, Run, Segment, Trace, WorkerLife
from loopscope.trace.record import ServerRecord

SATURATED_SHARE = 0.9
"""A point is saturated when the server served less than this share of the offered rate, or
answered any request with an error or not at all."""
MAX_KEPT_REQUESTS = 5000
"""With `--probe`, the client stamps of at most this many requests per point join its Trace."""
ID_PREFIX = "B"
"""The driver's request ids: `B1`, `B2`, ... (the `x-loopscope-request` header)."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """How to measure every point: offered `rates` (req/s), each for `duration_s`."""

    rates: tuple[float, ...]
    duration_s: float = 10.0
    io_ms: float = 50.0
    probe: bool = False
    arrivals: str = "constant"
    seed: int = 0
    timeout_s: float = 30.0
    processes: int = 1
    connections: int = 512
    server_cpus: tuple[int, ...] | None = None
    driver_cpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.rates or any(rate <= 0 for rate in self.rates):
            raise UsageError("Give one or more positive rates, e.g. --rates 50,100,200.")
        if not 0 < self.duration_s <= 3600:
            raise UsageError(f"--duration must be in (0, 3600] s, not {self.duration_s:g}.")


@dataclass(slots=True)
class BenchPoint:
    """One measured point: `model` in `mode` offered `rate` req/s."""

    server: str
    mode: str
    rate: float
    capacity: Capacity
    outcome: LoadOutcome
    trace: Trace | None = None

    @property
    def saturated(self) -> bool:
        """Whether the server fell short of the offered rate (see `SATURATED_SHARE`)."""
        o = self.outcome
        return o.achieved_rps < SATURATED_SHARE * o.intended_rate or o.errors > 0 or o.timeouts > 0


@dataclass(slots=True)
class BenchResult:
    """Every point of a bench, in the order measured, and how they were measured."""

    options: BenchOptions
    points: list[BenchPoint] = field(default_factory=list)
    started_ns: int = 0

    def curves(self) -> dict[tuple[str, str], list[BenchPoint]]:
        """The points of each (server, mode), by rising rate."""
        curves: dict[tuple[str, str], list[BenchPoint]] = {}
        for point in self.points:
            curves.setdefault((point.server, point.mode), []).append(point)
        for points in curves.values():
            points.sort(key=lambda p: p.rate)
        return curves


def saturation_point(points: Sequence[BenchPoint]) -> BenchPoint | None:
    """The lowest-rate saturated point of one curve, or `None` if it kept up everywhere."""
    return next((p for p in sorted(points, key=lambda p: p.rate) if p.saturated), None)


def check_modes(modes: Sequence[str]) -> list[str]:
    """`modes` if every one is a demo mode (`loopscope.demo.VARIANTS`), else a `UsageError`."""
    from loopscope.demo import VARIANTS

    unknown = [mode for mode in modes if mode not in VARIANTS]
    if unknown or not modes:
        raise UsageError(
            f"Unknown mode {', '.join(map(repr, unknown)) or '(none)'}; use some of "
            f"{', '.join(VARIANTS)}."
        )
    return list(modes)


def modes_of(model: ServerModel, modes: Sequence[str]) -> list[str]:
    """The asked `modes` that `model` serves; a WSGI model serves its one mode whatever is
    asked."""
    served = [mode for mode in modes if mode in model.modes]
    return served or list(model.modes)[:1]


PointProgress = Callable[[str, str, float], Callable[[int, int], None]]
"""`(server, mode, rate) -> progress(done, total)` for the point about to run."""


def run_bench(
    models: Sequence[ServerModel],
    modes: Sequence[str],
    options: BenchOptions,
    on_point: PointProgress | None = None,
) -> BenchResult:
    """Measure every (model, mode, rate) point of `options`."""
    result = BenchResult(options=options, started_ns=time.monotonic_ns())
    for model in models:
        for mode in modes_of(model, modes):
            for rate in options.rates:
                progress = on_point(model.name, mode, rate) if on_point else None
                result.points.append(measure_point(model, mode, rate, options, progress))
    return result


def measure_point(
    model: ServerModel,
    mode: str,
    rate: float,
    options: BenchOptions,
    progress: Callable[[int, int], None] | None = None,
) -> BenchPoint:
    """One point: a fresh server, a warm-up, the load, and (with `probe`) the point's Trace."""
    model.check_mode(mode)
    settings = model.settings(options.io_ms, probe=options.probe, cpus=options.server_cpus)
    body = {"username": "user1"}
    server = ServerProcess(settings)
    try:
        server.start()
        url = server.url + model.route(mode)
        _warm_up(url, body, model.workers * 2, options.io_ms)
        plan = RatePlan(
            url=url,
            rate=rate,
            duration_s=options.duration_s,
            method="POST",
            body=body,
            arrivals=options.arrivals,
            seed=options.seed,
            timeout_s=options.timeout_s,
            connections=options.connections,
            keep_requests=MAX_KEPT_REQUESTS if options.probe else 0,
            id_prefix=ID_PREFIX,
        )
        # With the probe, the kernel's accept queue and the worker processes are sampled from
        # outside while the load runs: what a worker never sees, the wait before it took a
        # request, and which worker lived when.
        sampler = (
            ServerSampler(settings.host, server.port, server.worker_lives)
            if options.probe
            else None
        )
        if sampler is not None:
            sampler.start()
        try:
            outcome = run_fixed_rate(plan, options.processes, options.driver_cpus, progress)
        finally:
            if sampler is not None:
                sampler.stop()
        server.check_alive()
        workers = [
            dataclasses.replace(w, ended_ns=sampler.ended.get(w.pid) if sampler else None)
            for w in server.worker_lives()
        ]
        server.stop()
        records = server.probe_records()
    finally:
        server.close()
    point = BenchPoint(model.name, mode, rate, model.capacity(mode), outcome)
    if options.probe and model.probe_able:
        point.trace = _trace(
            model, mode, rate, options, outcome, records, settings.app, sampler, workers
        )
    return point


def _warm_up(url: str, body: dict[str, str], count: int, io_ms: float) -> None:
    # First requests pay for imports and schema building; every worker should have served one
    # before the clock starts. An error here is the server's and is raised.
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    for _ in range(count):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30 + io_ms / 1000) as answer:
                answer.read()
        except (urllib.error.URLError, OSError) as exc:
            raise LoadError(f"The warm-up request to {url} failed: {exc}.") from exc


def _trace(
    model: ServerModel,
    mode: str,
    rate: float,
    options: BenchOptions,
    outcome: LoadOutcome,
    records: list[ServerRecord],
    app: str,
    sampler: ServerSampler | None = None,
    workers: Sequence[WorkerLife] = (),
) -> Trace:
    """The point's Trace: the client's kept (sampled) requests joined with every worker's probe
    record, the accept queue's samples and the worker processes."""
    path = model.route(mode)
    requests = [
        Request(
            id=kept["id"],
            method="POST",
            path=path,
            route=path,
            status=kept["status"],
            client_send_ns=kept["send_ns"],
            client_first_byte_ns=kept["first_byte_ns"],
            client_done_ns=kept["done_ns"],
            error=kept["error"],
        )
        for kept in outcome.requests
    ]
    notes = [] if records else ["The probe wrote no record: client stamps only."]
    kept = {r.id for r in requests}
    if outcome.sent > len(kept):
        notes.append(
            f"Sampled: the client kept {len(kept)} of the {outcome.sent} requests it sent "
            "(evenly spread); the others are left out of this trace's requests, and what the "
            "server did for them is shown for no request."
        )
    records = [_sampled(record, kept, several=len(records) > 1) for record in records]
    http = "h11"
    if model.app == WSGI_APP:
        threads = model.threads or 1  # a sync worker is one thread
        http = "gunicorn"  # gunicorn's own HTTP parser
    else:
        threads = model.threads if model.threads is not None else ANYIO_DEFAULT_TOKENS
    queue = sampler.queue if sampler is not None else []
    if sampler is not None and sampler.unavailable:
        notes.append(f"The accept queue was not sampled: {sampler.unavailable}")
    run = Run(
        mode=mode,
        app=app,
        tool_version=__version__,
        python=platform.python_version(),
        server=model.server,
        http=http,
        workers=model.workers,
        threads=threads,
        io_ms=options.io_ms,
        scenario=f"open loop: {rate:g} req/s for {options.duration_s:g} s ({model.name})",
        started_ns=outcome.start_ns,
        notes=notes,
        queue_sample_ms=sampler.period_ms if queue and sampler is not None else None,
    )
    return build_trace(
        run, requests, records, since_ns=outcome.start_ns, accept_queue=queue, workers=workers
    )


_DRIVER_ID = re.compile(rf"^{ID_PREFIX}[0-9-]+$")
"""The ids the bench's driver gives its requests (`B<n>`, `B<k>-<n>` with several driver
processes; see `driver_process.plans_for`)."""


def _sampled(record: ServerRecord, kept: set[str], several: bool) -> ServerRecord:
    """`record` with only the driver's requests the client kept (requests from anyone else
    stay). What the server did for the others stays too, attributed to no request: the loop's
    and threads' lanes, loop blocks and pool calls, so the loop's busy time and its blocks are
    the whole run's. With `several` records, its thread lanes are named `thread:<pid>/<name>`:
    each worker has its own threads, and their names (`AnyIO worker thread`, `Thread-5`) repeat
    from one worker to the next."""
    dropped = {r.id for r in record.requests if r.id not in kept and _DRIVER_ID.match(r.id)}
    own = f"thread:{record.pid}/"

    def lane_of(segment: Segment) -> Segment:
        name = segment.lane
        if several and name.startswith("thread:") and not name.startswith(own):
            name = own + name.removeprefix("thread:")
        unkept = segment.request_id in dropped
        if name == segment.lane and not unkept:
            return segment
        return dataclasses.replace(
            segment, lane=name, request_id=None if unkept else segment.request_id
        )

    return dataclasses.replace(
        record,
        requests=[r for r in record.requests if r.id not in dropped],
        lanes=[lane_of(segment) for segment in record.lanes],
        loop_blocks=[
            dataclasses.replace(b, request_id=None, delayed=[d for d in b.delayed if d in kept])
            if b.request_id in dropped
            else b
            for b in record.loop_blocks
        ],
        pool=[
            dataclasses.replace(c, request_id=None) if c.request_id in dropped else c
            for c in record.pool
        ],
    )


def point_record(point: BenchPoint, io_ms: float, trace: str | None = None) -> dict[str, Any]:
    """One point in the JSON shape of `loopscope bench --json`; `trace`, where given, is
    where its kept trace was written (`--probe`)."""
    o = point.outcome
    latency = o.latency
    shown: dict[str, float | None] = {
        name: (round(getattr(latency, name), 3) if latency is not None else None)
        for name in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
    }
    return {
        "server": point.server,
        "mode": point.mode,
        "rate": point.rate,
        "achieved_rps": round(o.achieved_rps, 3),
        "sent": o.sent,
        "ok": o.ok,
        "errors": o.errors,
        **shown,
        "driver_cpu": round(o.driver_cpu, 4),
        "timeouts": o.timeouts,
        "error_kinds": o.error_kinds,
        "intended": o.intended,
        "send_rate": round(o.send_rate, 3),
        "send_lag_p99_ms": round(o.send_lag_p99_ms, 3),
        "fell_behind": o.fell_behind,
        "saturated": point.saturated,
        "in_flight": round(o.in_flight, 3),
        "littles_in_flight": (
            round(o.littles_in_flight, 3) if o.littles_in_flight is not None else None
        ),
        "capacity_rps": point.capacity.max_rps(io_ms),
        "capacity_slots": point.capacity.slots,
        "capacity_holder": point.capacity.holder,
        **({"trace": trace} if trace is not None else {}),
    }


def bench_record(
    result: BenchResult, traces: Mapping[tuple[str, str, float], str] | None = None
) -> dict[str, Any]:
    """The whole bench as JSON: `{"points": [...], "run": {...}}`; `traces[(server, mode,
    rate)]` is where a point's trace was written, if it was."""
    options = dataclasses.asdict(result.options)
    traces = traces or {}
    return {
        "points": [
            point_record(p, result.options.io_ms, traces.get((p.server, p.mode, p.rate)))
            for p in result.points
        ],
        "run": {
            **options,
            "tool_version": __version__,
            "python": platform.python_version(),
            "clock": "monotonic_ns",
            "started_ns": result.started_ns,
            "latency_from": "intended send time (open loop, corrected for coordinated omission)",
        },
    }
