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
from loopscope.errors import LoadError, ServerDiedError, ServerStartError, UsageError
from loopscope.load import Scenario, run_load, warmup_scenario
from loopscope.load.driver import Progress
from loopscope.measure.failures import (
    Failure,
    is_failed,
    is_not_a_factory,
    parse_exceptions,
    summarize_failures,
)
from loopscope.measure.sampler import DEFAULT_PERIOD_MS, ServerSampler
from loopscope.server import ServerProcess, ServerSettings
from loopscope.server.target import package_root
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
        server=settings.server,
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
    warmup_unsafe: bool = False,
    failures: list[Failure] | None = None,
    queue_period_ms: float | None = DEFAULT_PERIOD_MS,
) -> Trace:
    """Run `scenario` against a fresh server with `settings` and return the measured `Trace`
    (`run` itself is not changed: the trace's is a copy with the start time and notes).

    With `warmup`, each distinct safe hit (GET, HEAD, OPTIONS; every hit with `warmup_unsafe`)
    is sent once before the measurement (ids `W1`, `W2`, ...) and everything the server
    recorded before the measurement began is left out of the trace. `failures`, when given,
    receives the measured requests that failed, with the app's exceptions from the server log.
    While the load runs, the listening socket's accept queue is sampled every `queue_period_ms`
    (`None`: not sampled) and the server's worker processes are watched for restarts.
    """
    notes = list(run.notes)
    server = ServerProcess(settings)
    try:
        if stage:
            stage("starting server")
        _start(server)
        log_start = _warm_up(server, scenario, notes, stage, warmup_unsafe) if warmup else 0
        if stage:
            stage("sending requests")
        sampler = ServerSampler(settings.host, server.port, server.worker_lives, queue_period_ms)
        sampler.start()
        started_ns = time.monotonic_ns()
        try:
            requests: list[Request] = asyncio.run(run_load(server.url, scenario, progress))
        except LoadError as exc:
            # Nothing answered: a dead server is the cause to report.
            server.check_alive(wait_s=1.0)
            raise exc
        finally:
            # Before the server stops: its workers ending at shutdown are not restarts.
            sampler.stop()
        # A server that died mid-run: what was measured until then is kept, marked partial.
        died = _death(server, wait_s=0.5 if any(r.status is None for r in requests) else 0.0)
        if stage:
            stage("stopping server")
        workers = [
            dataclasses.replace(w, ended_ns=sampler.ended.get(w.pid))
            for w in server.worker_lives()
            if w.pid not in sampler.gone_before
        ]
        if sampler.gone_before:
            pids = ", ".join(map(str, sorted(sampler.gone_before)))
            notes.append(
                f"Worker process(es) {pids} died before the measurement began (during the "
                "warm-up); they are left out."
            )
        server.stop()
        records = server.probe_records()
        if died is not None:
            notes.append(
                f"Partial run, cut short: {died[0].lower()}{died[1:]} Requests after that "
                "got no answer."
            )
        if settings.probe and not records:
            notes.append(
                "The probe was asked for but left no record, not even a checkpoint (the server "
                "may have died before its first one, 0.5 s after the app's first call): this "
                "trace holds the client's view only."
            )
        queue = sampler.queue
        if sampler.unavailable:
            notes.append(f"The accept queue was not sampled: {sampler.unavailable}")
        measured = dataclasses.replace(
            run,
            started_ns=started_ns,
            notes=notes,
            partial=died is not None,
            queue_sample_ms=queue_period_ms if queue else None,
        )
        trace = build_trace(
            measured, requests, records, since_ns=started_ns, accept_queue=queue, workers=workers
        )
        # From the trace's requests: the probe's route templates and server end times.
        trace.run.failures = _failures(server, trace.requests, log_start)
        if failures is not None:
            failures.extend(trace.run.failures)
        if died is not None:
            raise ServerDiedError(died, server.log_tail(), partial=trace)
        return trace
    finally:
        server.close()


def _death(server: ServerProcess, wait_s: float = 0.0) -> str | None:
    """How the server died, as `ServerDiedError`'s message; `None` while it runs (`wait_s`:
    see `ServerProcess.check_alive`)."""
    try:
        server.check_alive(wait_s=wait_s)
    except ServerDiedError as exc:
        return str(exc).split("\n", 1)[0]
    return None


def _start(server: ServerProcess) -> None:
    try:
        server.start()
    except ServerStartError as exc:
        if server.settings.factory and is_not_a_factory(exc.log_tail):
            raise UsageError(f"{server.settings.app} is not a factory; drop --factory.") from exc
        raise


def _warm_up(
    server: ServerProcess, scenario: Scenario, notes: list[str], stage: Stage | None, unsafe: bool
) -> int:
    """Send the warm-up, say what it sent in `notes`, and return where the server's log stood
    after it, so its exceptions are not blamed on the measurement."""
    warm = warmup_scenario(scenario, unsafe=unsafe)
    skipped = sorted(
        {f"{h.method} {h.path}" for hits in scenario.hits_by_user for h in hits}
        - {f"{h.method} {h.path}" for hits in (warm.hits_by_user if warm else ()) for h in hits}
    )
    if warm is not None:
        if stage:
            stage("warming up")
        try:
            sent = asyncio.run(run_load(server.url, warm, id_prefix="W"))
        except LoadError as exc:
            server.check_alive("during the warm-up, before anything was measured", wait_s=1.0)
            raise LoadError(f"The warm-up failed: {exc}") from exc
        server.check_alive("during the warm-up, before anything was measured")
        names = ", ".join(f"{h.method} {h.path}" for (h,) in warm.hits_by_user)
        notes.append(
            f"Warmed up (called once before the measurement, not shown): {names}; so "
            "first-request work such as schema building is not counted."
        )
        _await_logged(server, sum(1 for r in sent if is_failed(r)))
    if skipped:
        notes.append(
            f"Not warmed up, as they may change the app's state: {', '.join(skipped)} "
            "(their first calls may include one-time work; --warmup-unsafe warms them up too)."
        )
    return len(server.log_text())


def _await_logged(server: ServerProcess, expected: int, timeout_s: float = 1.0) -> None:
    # uvicorn logs an exception just after its 500 went out: wait (briefly) for the warm-up's
    # tracebacks, so that none lands after the measurement's start in the log.
    deadline = time.monotonic() + timeout_s
    while expected and time.monotonic() < deadline:
        if server.log_text().count("Exception in ASGI application") >= expected:
            return
        time.sleep(0.01)


def _failures(server: ServerProcess, requests: list[Request], log_start: int) -> list[Failure]:
    settings = server.settings
    root = settings.app_dir or package_root(settings.app)
    exceptions = parse_exceptions(server.log_text()[log_start:], root)
    return summarize_failures(requests, exceptions)
