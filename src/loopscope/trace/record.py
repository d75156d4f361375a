"""`ServerRecord`: what the probe in one server process recorded, typed and versioned.

The probe builds one per process (`Probe.collect()`), writes it as JSON at shutdown, and
`loopscope.trace.merge.build_trace` joins any number of them (one per worker) with the client's
stamps, or with none (a server-only trace). All times are `time.monotonic_ns()` integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.trace.model import (
    PYDANTIC_CONFIG,
    LoopBlock,
    PoolCall,
    PoolSample,
    ProbeFailure,
    Segment,
)

RECORD_VERSION = 1
WSGI_LOOP = "wsgi"
"""`ServerRecord.loop` of a WSGI worker's record (`loopscope.probe.wsgi`): no event loop, each
request runs in one thread of the worker from start to end."""


@dataclass(slots=True)
class ServerRequest:
    """One HTTP request as the probe's middleware saw it.

    `id` is the client's `x-loopscope-request` header (sanitized, made unique) or a generated
    `s<pid>-<n>`. `route` is the full route template (`/users/{id}`), else the path. `segments`
    are the request's lane (`request:<id>`), ordered and non-overlapping; `loop_steps` and
    `longest_step_ns` are `None` where loop steps were not timed.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    id: str
    method: str
    path: str
    route: str
    status: int | None
    server_start_ns: int
    server_end_ns: int | None
    loop_steps: int | None
    longest_step_ns: int | None
    pool_hops: int
    segments: list[Segment] = field(default_factory=list)


@dataclass(slots=True)
class ProbeCounts:
    """How much the probe recorded and how much it could not: events dropped past its budget
    (the memory cap), its own failures, events it did not record after such a failure (a hook
    that failed skips the rest of its chunk of the budget), loop steps recorded, event loops
    watched one after another, and loops that served the app while another was watched (not
    recorded). Under uvloop, where only task steps are timed, `unseen_blocks` and
    `unseen_block_ns` count the loop blocks (and their time) the watchdog found outside every
    timed task step: callbacks outside tasks."""

    __pydantic_config__ = PYDANTIC_CONFIG

    dropped_events: int = 0
    probe_errors: int = 0
    unrecorded_events: int = 0
    steps: int = 0
    loops: int = 0
    unobserved_loops: int = 0
    unseen_blocks: int = 0
    unseen_block_ns: int = 0


@dataclass(slots=True)
class ServerRecord:
    """Everything the probe recorded in one server process (see `loopscope.probe`).

    `loop` is `asyncio`, `uvloop`, another loop's class path, `unknown` (no ASGI call seen), or
    `wsgi` (`WSGI_LOOP`: a WSGI worker, no event loop);
    `precise` says whether loop steps were timed (else the watchdog's heartbeat only ran).
    `checkpoint_ns` is `None` for the final record, written when the process shut down; else the
    record is a checkpoint taken at that time while the app ran (the process ended without
    writing its final record, see `loopscope.probe.checkpoint`).
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    pid: int
    loop: str
    precise: bool
    block_ms: float
    requests: list[ServerRequest] = field(default_factory=list)
    loop_blocks: list[LoopBlock] = field(default_factory=list)
    pool: list[PoolCall] = field(default_factory=list)
    pool_samples: list[PoolSample] = field(default_factory=list)
    lanes: list[Segment] = field(default_factory=list)
    counts: ProbeCounts = field(default_factory=ProbeCounts)
    failures: list[ProbeFailure] = field(default_factory=list)
    checkpoint_ns: int | None = None
    version: int = RECORD_VERSION

    def request(self, request_id: str) -> ServerRequest:
        """The request with `request_id`; `KeyError` if the probe did not see it."""
        for request in self.requests:
            if request.id == request_id:
                return request
        raise KeyError(request_id)

    @property
    def request_ids(self) -> list[str]:
        """Every request's id, in order of arrival."""
        return [request.id for request in self.requests]
