"""One measured run: start the server, send the scenario, stop the server, build the Trace.

This is the one place where `server`, `load` and the probe's records meet; the CLI's `demo` and
`trace` commands are both a loop over `measure`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import platform
import time
from collections.abc import Callable

from loopscope import __version__
from loopscope.errors import LoadError
from loopscope.load import Scenario, run_load, warmup_scenario
from loopscope.load.driver import Progress
from loopscope.server import ServerProcess, ServerSettings
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS
from loopscope.trace.merge import build_trace
from loopscope.trace.model import Request, Run, Trace

Stage = Callable[[str], None]


def describe_run(
    settings: ServerSettings, scenario: Scenario, mode: str, io_ms: float | None = None
) -> Run:
    """The `Run` metadata of a measurement about to be made."""
    return Run(
        mode=mode,
        app=settings.app,
        source="measured",
        tool_version=__version__,
        python=platform.python_version(),
        server="uvicorn",
        loop=settings.loop,
        http=settings.http,
        workers=settings.workers,
        threads=settings.threads if settings.threads is not None else ANYIO_DEFAULT_TOKENS,
        users=scenario.users,
        rounds=scenario.rounds,
        scenario=scenario.name,
        block_ms=settings.block_ms if settings.probe else None,
        io_ms=io_ms,
    )


def measure(
    settings: ServerSettings,
    scenario: Scenario,
    run: Run,
    progress: Progress | None = None,
    stage: Stage | None = None,
    warmup: bool = True,
) -> Trace:
    """Run `scenario` against a fresh server with `settings` and return the measured `Trace`
    (`run` itself is not changed: the trace's is a copy with the start time and notes).

    With `warmup`, each distinct route is hit once before the measurement (ids `W1`, `W2`, ...)
    and everything the server recorded before the measurement began is left out of the trace.
    """
    notes = list(run.notes)
    server = ServerProcess(settings)
    try:
        if stage:
            stage("starting server")
        server.start()
        if warmup:
            if stage:
                stage("warming up")
            try:
                asyncio.run(run_load(server.url, warmup_scenario(scenario), id_prefix="W"))
            except LoadError as exc:
                raise LoadError(f"The warm-up failed: {exc}") from exc
            notes.append(
                "Each route was called once before the measurement (warm-up, not shown), so "
                "first-request work such as schema building is not counted."
            )
        if stage:
            stage("sending requests")
        started_ns = time.monotonic_ns()
        requests: list[Request] = asyncio.run(run_load(server.url, scenario, progress))
        server.check_alive()
        if stage:
            stage("stopping server")
        server.stop()
        records = server.probe_records()
        if settings.probe and not records:
            notes.append(
                "The probe was asked for but wrote no record (the server may have been killed "
                "before it could): this trace holds the client's view only."
            )
        measured = dataclasses.replace(run, started_ns=started_ns, notes=notes)
        return build_trace(measured, requests, records, since_ns=started_ns)
    finally:
        server.close()
