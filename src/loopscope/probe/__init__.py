"""The probe: records, inside the server process, what the event loop and thread pool did.

Install it before the app is imported, wrap the app, and collect when the server has stopped:

```python
probe = loopscope.probe.install(block_ms=20)
app = probe.asgi(user_app)        # request ids, server-side start/end, status, route
...                               # uvicorn serves app
probe.dump("server.json")         # or probe.collect() -> ServerRecord
probe.uninstall()
```

`with loopscope.probe.installed(...) as probe:` (or `with install(...) as probe:`) uninstalls on
exit. Under the pure asyncio loop every loop step is timed (`precise: true`); under uvloop, whose
handles are compiled, every task step is (`precise: true` too): a task factory wraps each task's
coroutine, and uvloop's `call_soon`/`call_at`/`call_later` note when a request's task became
runnable. What stays unseen under uvloop, callbacks outside tasks, is found by the loop's own
ticker (`counts.unseen_blocks`, `unseen_block_ns`; see `docs/probe.md`). Every thread a request
waits on is recorded: anyio's pool, `asyncio.to_thread`, `loop.run_in_executor` (the default or
an app's own executor) and aiosqlite's connection threads (`PoolCall.executor`). The probe
imports only
`loopscope.trace`, `loopscope.errors`, the standard library and anyio, never raises into the app
(its own failures are counted, the first few kept with their cause), and stores at most
`max_events` records. It watches every event loop that serves the app, one after another.

## What it records (`Probe.collect()` → `ServerRecord`, `Probe.dump()` → its JSON)

One `loopscope.trace.record.ServerRecord` per process, typed and versioned; `dump` writes it
atomically, `loopscope.trace.io.load_record` reads it back, validated. In a server, the probe
also saves checkpoints while the app runs, from which the record is rebuilt if the process dies
before its `dump` (`loopscope.probe.checkpoint`; `checkpoint_ns` marks such a record). All
times are integer nanoseconds of `time.monotonic_ns()` (the system-wide CLOCK_MONOTONIC, the
same clock as the load driver's).

- `pid`, `loop` (`asyncio`, `uvloop`, another loop's class path, `mixed`, or `unknown`: no ASGI
  call seen), `precise` (loop steps timed; false = watchdog heartbeat only), `block_ms`.
- `requests`: one `ServerRequest` per HTTP request, in order of arrival. Its `id` is the client's
  `x-loopscope-request` header (sanitized: `[A-Za-z0-9._-]`, ≤ 64 chars; a repeated id gets
  `.2`, `.3`...) or a generated `s<pid>-<n>`; `route` the route template, else the path; `status`
  from `http.response.start` (null if the app sent none); `server_start_ns` the middleware's
  first sight, `server_end_ns` the last message handed to the server (null: running);
  `loop_steps`/`longest_step_ns` (null when not precise; task steps under uvloop); `pool_hops`
  (calls through `anyio.to_thread.run_sync`); `segments` on lane `request:<id>`, ordered,
  non-overlapping.
- `loop_blocks` (`LoopBlock`, by `start_ns`), `pool` (`PoolCall`, by `submitted_ns`; `thread` is
  `"<name> #<n>"` for anyio's workers, the thread's own name for an executor's, `reports_0`;
  `executor` is `None` for anyio's pool, else the executor's `thread_name_prefix` or
  `aiosqlite`, with its `capacity`), `pool_samples` (anyio's limiter at each submit, start and
  finish),
  `lanes` (`loop:<pid>`, then `thread:<name> #<n>` segments).
- `counts`: events dropped past the budget, the probe's own errors, events not recorded after
  such an error (`unrecorded_events`), loop steps recorded, loops
  watched one after another and loops that ran while another was watched, and under uvloop the
  loop blocks (and their time) outside every timed task step; `failures`: the first few of the
  probe's own errors with their hook and cause.

Request segments: in precise mode they cover `server_start_ns`→`server_end_ns` with the states
`on-loop`, `loop-blocked` (a step longer than `block_ms`; `cpu_ns` and `where` set), `awaiting`,
`ready`, `pool-wait` and `in-thread` (`cpu_ns` set); `queued` is never emitted (the client's send
time is not known here). `on-loop` segments have `cpu_ns: null`: reading the thread CPU clock on
every step would cost more than the step timing itself. In heartbeat mode a request's segments
hold only its `pool-wait`, `in-thread` and `loop-blocked` intervals, and do not cover the request.

Loop blocks: `where` is the innermost frame in the user's code (`path:line`, relative to
`app_root` or the working directory where possible), `stack` at most 8 `path:line in func`
entries, innermost last; `kind` is `gc` (with `where: null`) when garbage collection covers at
least half the block; `delayed` lists other requests that had a runnable handle, arrived (first
seen within 1 ms after the block's end) or had thread work finish during the block. `cpu_ns`
is the loop thread's CPU time in the block; its start is interpolated from the watchdog's
readings every `block_ms/2` (`block_ms/4` in heartbeat mode), so it is within a few ms. In
heartbeat mode a block spans from a missed heartbeat's post to its run (so it starts up to
`block_ms/4` late), is split where the sampled request changes, and its `request_id` is the
request of the task the loop was running; a stall that holds the GIL (a full GC, a C extension)
is caught as the watchdog waking late while the loop thread's CPU clock ran on.

The loop lane coalesces steps of one request less than 0.2 ms apart into one `on-loop` segment;
counts stay exact in `loop_steps` and `probe.steps` (the loop steps recorded).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from loopscope.probe.asgi import ASGIApp
from loopscope.probe.context import REQUEST_HEADER, REQUEST_ID, sanitize_request_id
from loopscope.probe.instrument import Probe, active_probe, install
from loopscope.trace.constants import DEFAULT_BLOCK_MS


@contextlib.contextmanager
def installed(
    *,
    block_ms: float = DEFAULT_BLOCK_MS,
    precise: bool | None = None,
    max_events: int = 200_000,
    app_root: str | None = None,
) -> Iterator[Probe]:
    """`install(...)` for the duration of a `with` block, uninstalled on exit."""
    probe = install(block_ms=block_ms, precise=precise, max_events=max_events, app_root=app_root)
    try:
        yield probe
    finally:
        probe.uninstall()


__all__ = [
    "REQUEST_HEADER",
    "REQUEST_ID",
    "ASGIApp",
    "Probe",
    "active_probe",
    "install",
    "installed",
    "sanitize_request_id",
]
