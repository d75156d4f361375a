"""The seed's experiment: the demo app in every execution mode, each against a fresh server.

A mode is a route variant plus the server setting it needs. The seed's "one worker thread W" is
not a variant of the code but of the server (the thread pool's tokens), so `single-thread` is
`blocking` with one token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from loopscope.demo import DemoSettings
from loopscope.errors import UsageError
from loopscope.load import seed_scenario
from loopscope.load.driver import Progress
from loopscope.measure.run import Stage, describe_run, measure
from loopscope.server import ServerSettings
from loopscope.trace.analysis import makespan_ns
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS, DEFAULT_BLOCK_MS
from loopscope.trace.io import trace_to_dict
from loopscope.trace.model import Trace

DEMO_APP = "loopscope.demo:create_app"


@dataclass(frozen=True, slots=True)
class Mode:
    """One way of running the seed's routes: which variant, and a forced token count if any."""

    name: str
    variant: str
    threads: int | None
    summary: str


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("blocking", "blocking", None, "plain `def`: FastAPI runs it in the thread pool"),
        Mode("single-thread", "blocking", 1, "plain `def` with one worker thread, the seed's W"),
        Mode("async-blocking", "async-blocking", None, "`async def` calling time.sleep + sqlite3"),
        Mode("async", "async", None, "`async def` awaiting asyncio.sleep + aiosqlite"),
        Mode("offload", "offload", None, "`async def` awaiting run_in_threadpool(blocking)"),
    )
}


def parse_modes(text: str) -> list[Mode]:
    """`"blocking,async"` → the `Mode`s, in the order given; unknown names are a `UsageError`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODES]
    if unknown or not names:
        raise UsageError(
            f"Unknown mode {', '.join(unknown) or '(none)'}; use some of {', '.join(MODES)}."
        )
    return [MODES[name] for name in names]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The settings every mode of one demo shares: the seed's I/O time, the users sending at
    once, the pool's tokens (where a mode does not force its own), and the probe's."""

    io_ms: float = 1000.0
    users: int = 3
    threads: int = ANYIO_DEFAULT_TOKENS
    probe: bool = True
    block_ms: float = DEFAULT_BLOCK_MS
    warmup: bool = True


def run_mode(
    mode: Mode,
    options: DemoOptions,
    progress: Progress | None = None,
    stage: Stage | None = None,
) -> Trace:
    """Measure the seed's scenario against the demo app in `mode` on a fresh server."""
    demo = DemoSettings(io_ms=options.io_ms, users=max(100, options.users))
    settings = ServerSettings(
        app=DEMO_APP,
        factory=True,
        threads=mode.threads or options.threads,
        env=demo.to_env(),
        probe=options.probe,
        block_ms=options.block_ms,
    )
    scenario = seed_scenario(mode.variant, options.users)
    run = describe_run(settings, scenario, mode.name, io_ms=options.io_ms)
    # The seed's login/info/history are POSTs that only read: warming them up is safe.
    return measure(
        settings, scenario, run, progress, stage, warmup=options.warmup, warmup_unsafe=True
    )


def demo_record(traces: Iterable[Trace]) -> dict[str, object]:
    """The demo's JSON: `{"runs": [...]}`, each run a full trace plus its headline numbers.

    A run's `mode`, `io_ms`, `users`, `threads`, `makespan_s` and each request's `latency_s` sit
    beside the trace's own keys, so the file is both a summary and a set of loadable traces.
    """
    runs = []
    for trace in traces:
        data = trace_to_dict(trace)
        for request, item in zip(trace.requests, data["requests"], strict=True):
            item["latency_s"] = request.latency_ns / 1e9
        runs.append(
            {
                "mode": trace.run.mode,
                "io_ms": trace.run.io_ms,
                "users": trace.run.users,
                "threads": trace.run.threads,
                "makespan_s": makespan_ns(trace) / 1e9,
                **data,
            }
        )
    return {"runs": runs}
