"""The Trace: one data model for measured and simulated runs.

Every time is an integer of nanoseconds on `time.monotonic_ns()`, which on Linux is the
system-wide CLOCK_MONOTONIC: stamps taken by the load driver and by the probe inside the server
line up without any translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS

TRACE_VERSION = 2
"""The version of the trace file format written now. Version 1 files (no probe errors, every
request with client stamps) read as version 2."""
READABLE_VERSIONS = (1, 2)

State = Literal[
    "queued",  # sent by the client, not yet seen by the app [the seed's accept queue]
    "on-loop",  # this request's Python code is running on the event loop [coroutine running]
    "awaiting",  # suspended at an `await`; the loop is free for others [non-blocking wait]
    "ready",  # woken, waiting for the loop to get to it (tokio-console's "scheduled")
    "loop-blocked",  # the loop is stuck in a call made for this request [W waiting]
    "pool-wait",  # waiting for a thread-pool token or a worker thread
    "in-thread",  # running in a worker thread
]
STATES: tuple[State, ...] = get_args(State)

# Read by pydantic when `loopscope.trace.io` validates a file (a plain dict, so that this module
# does not import pydantic into the observed server): an unknown key is an error, not ignored.
PYDANTIC_CONFIG = {"extra": "forbid"}

Source = Literal["measured", "simulated"]
BlockKind = Literal["code", "gc"]


def request_lane(request_id: str) -> str:
    """The lane name of one request's own timeline: `request:<id>`."""
    return f"request:{request_id}"


@dataclass(slots=True)
class Segment:
    """One interval in one lane, in one state.

    `lane` is `request:<id>`, `loop:<pid>` or `thread:<name>`. `cpu_ns` is the thread CPU time
    spent in the interval where it was measured (`None` where it was not); wall minus CPU is the
    time the thread spent waiting. `where` is the `path:line` the interval is attributed to.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    lane: str
    state: State
    start_ns: int
    end_ns: int
    cpu_ns: int | None = None
    where: str | None = None
    request_id: str | None = None

    @property
    def duration_ns(self) -> int:
        """The interval's wall-clock length."""
        return self.end_ns - self.start_ns


@dataclass(slots=True)
class Request:
    """One HTTP request, as the client saw it and, where a probe ran, as the server saw it.

    A request the probe saw but no client stamped (a server-only trace, an untagged client) has
    `client_send_ns` and `client_done_ns` `None`; `sent_ns`/`done_ns` then fall back to the
    server's times. `worker` is the pid of the server process that served it, where a probe
    saw it.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    id: str
    method: str
    path: str
    route: str
    status: int | None
    client_send_ns: int | None
    client_done_ns: int | None
    client_first_byte_ns: int | None = None
    server_start_ns: int | None = None
    server_end_ns: int | None = None
    size: int | None = None
    user: int | None = None
    error: str | None = None
    loop_steps: int | None = None
    longest_step_ns: int | None = None
    pool_hops: int | None = None
    worker: int | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """The route's identity: method and full template, `GET /users/{id}`."""
        return f"{self.method} {self.route}"

    @property
    def sent_ns(self) -> int:
        """When the request began: the client's send, else the server's first sight of it."""
        if self.client_send_ns is not None:
            return self.client_send_ns
        return self.server_start_ns or 0

    @property
    def done_ns(self) -> int:
        """When it ended: the client's last byte, else the server's last message, else its
        start (a request the server never finished)."""
        if self.client_done_ns is not None:
            return self.client_done_ns
        return self.server_end_ns or self.sent_ns

    @property
    def latency_ns(self) -> int:
        """Client send to client done (server start to end where no client stamped it)."""
        return self.done_ns - self.sent_ns

    @property
    def server_only(self) -> bool:
        """Whether only the server saw this request (no client stamps)."""
        return self.client_send_ns is None


@dataclass(slots=True)
class LoopBlock:
    """An interval in which the event loop did not turn for longer than the threshold.

    `request_id` names the culprit (`None` when the loop was busy outside any request), `where`
    the innermost frame in the user's code, `stack` a short stack, innermost last, and `delayed`
    the other requests that were ready or arrived while the loop was stuck. `kind` is `gc` when
    a garbage collection pause, not user code, held the loop. `runnable_ns`, where measured, is
    the time the loop thread was ready to run but the OS ran something else (a busy machine):
    wall minus CPU minus runnable is what the thread really spent waiting. `inner`, where an
    installed library did the work, is its innermost line below `where`
    (`argon2/low_level.py:102`); `where` is then the user's line, or, in a route a library
    provides, the library's own last line (`fastapi_users/manager.py:376`). `process_cpu_ns`,
    where measured, is the CPU time of the whole server process during the block: far above
    `cpu_ns`, the loop thread was waiting on work in other threads (a library's own), not on
    I/O. `process_runnable_ns`, where measured, is how long the process's threads together
    waited for a core during the block (Linux `schedstat`): on a busy machine the threads a
    loop waits for compute less and queue more, and both are their work.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    start_ns: int
    end_ns: int
    cpu_ns: int | None
    request_id: str | None
    where: str | None
    stack: list[str] = field(default_factory=list)
    kind: BlockKind = "code"
    delayed: list[str] = field(default_factory=list)
    runnable_ns: int | None = None
    inner: str | None = None
    process_cpu_ns: int | None = None
    process_runnable_ns: int | None = None

    @property
    def duration_ns(self) -> int:
        """The block's wall-clock length."""
        return self.end_ns - self.start_ns


@dataclass(slots=True)
class PoolCall:
    """One trip to a worker thread: anyio's thread pool (`anyio.to_thread.run_sync`), an
    executor (`asyncio.to_thread`, `loop.run_in_executor`) or a driver's own thread (aiosqlite).

    `submitted_ns` → `started_ns` is the token (and thread) wait; `started_ns` → `finished_ns`
    the run in `thread`; `resumed_ns`, where known, is when the awaiting task ran again; `where`
    is where `func` is defined (`users.py:42`), for the app's and installed libraries' code.
    `executor` names the executor (its `thread_name_prefix`, e.g. `reports`, or `aiosqlite`;
    `None`: anyio's thread pool) and `capacity` its number of threads, where known.
    `runnable_ns`, where measured (Linux schedstat, read by the thread itself), is the time the
    thread was ready to run during the call but the OS ran something else: wall minus `cpu_ns`
    minus `runnable_ns` is what it spent waiting (on I/O, or for the GIL).
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    request_id: str | None
    func: str
    submitted_ns: int
    started_ns: int | None
    finished_ns: int | None
    thread: str | None
    cpu_ns: int | None = None
    resumed_ns: int | None = None
    where: str | None = None
    executor: str | None = None
    capacity: int | None = None
    runnable_ns: int | None = None


@dataclass(slots=True)
class PoolSample:
    """The thread-pool limiter at one instant (`CapacityLimiter.statistics()`)."""

    __pydantic_config__ = PYDANTIC_CONFIG

    t_ns: int
    borrowed: int
    total: int
    waiting: int


@dataclass(slots=True)
class QueueSample:
    """The listening socket's accept queue at one instant, read from the kernel by loopscope's
    own process: `depth` connections the kernel has completed and no worker has accepted yet,
    of at most `backlog`. Samples are kept where the depth changed (and at both ends), so the
    queue is a step function of time."""

    __pydantic_config__ = PYDANTIC_CONFIG

    t_ns: int
    depth: int
    backlog: int


@dataclass(slots=True)
class WorkerLife:
    """One server process that served the app (a uvicorn or gunicorn worker, or the one server).

    `started_ns` is when the app first ran in it (read inside the process); `ended_ns` when
    loopscope saw it gone during the run (`None`: alive when the run ended), to within the
    sampling period. `loop` and `http` are what the process really ran (`uvloop`, `asyncio`;
    `h11`, `httptools`), read inside it; `unknown` where it served no request. `recorded` says
    whether its probe left a record; `checkpoint_ns`, set where that record is a checkpoint
    (the process ended without writing its final record: a crash), when it was taken: the
    server-side view of this process is as of then.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    pid: int
    started_ns: int | None = None
    ended_ns: int | None = None
    loop: str = "unknown"
    http: str = "unknown"
    recorded: bool = False
    checkpoint_ns: int | None = None


@dataclass(slots=True)
class ProbeFailure:
    """One of the probe's own failures, kept with its cause: which hook, and the exception's
    `repr`. The probe never raises into the app; it counts every failure and keeps the first few.
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    hook: str
    error: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Failure:
    """`count` requests to `route` (method and template) that failed alike: `status` (`None`:
    no answer), and the cause where known: the exception's type and message, and where the app
    raised it."""

    __pydantic_config__ = PYDANTIC_CONFIG

    route: str
    status: int | None
    count: int
    error_type: str | None = None
    message: str | None = None
    where: str | None = None

    @property
    def cause(self) -> str:
        """`RuntimeError: boom at app/x.py:12`, or what is known of it; empty if nothing is."""
        text = self.error_type or ""
        if self.message:
            text = f"{text}: {self.message}" if text else self.message
        if self.where:
            text = f"{text} at {self.where}" if text else f"at {self.where}"
        return text


@dataclass(slots=True)
class Run:
    """What was run, how, and on what: everything needed to read the trace a year later.

    `queue_sample_ms` is the period at which the accept queue was sampled (`None`: it was not).
    """

    __pydantic_config__ = PYDANTIC_CONFIG

    mode: str
    app: str
    source: Source = "measured"
    tool_version: str = ""
    python: str = ""
    server: str = "uvicorn"
    loop: str = "asyncio"
    http: str = "h11"
    workers: int = 1
    threads: int | None = ANYIO_DEFAULT_TOKENS
    io_ms: float | None = None
    users: int = 0
    rounds: int = 1
    scenario: str = ""
    block_ms: float | None = None
    precise: bool = False
    clock: str = "monotonic_ns"
    started_ns: int = 0
    notes: list[str] = field(default_factory=list)
    probe: dict[str, int] = field(default_factory=dict)
    probe_failures: list[ProbeFailure] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    queue_sample_ms: float | None = None
    # True when the run was cut short (the server died mid-run): the trace holds what was
    # measured until then, and the notes say what happened.
    partial: bool = False


@dataclass(slots=True)
class Trace:
    """One run: the requests with their segments, the loop's blocks and the thread pool's use;
    where measured, the accept queue's samples and the server's worker processes."""

    __pydantic_config__ = PYDANTIC_CONFIG

    run: Run
    requests: list[Request] = field(default_factory=list)
    loop_blocks: list[LoopBlock] = field(default_factory=list)
    pool: list[PoolCall] = field(default_factory=list)
    pool_samples: list[PoolSample] = field(default_factory=list)
    lanes: list[Segment] = field(default_factory=list)
    accept_queue: list[QueueSample] = field(default_factory=list)
    workers: list[WorkerLife] = field(default_factory=list)
    version: int = TRACE_VERSION
