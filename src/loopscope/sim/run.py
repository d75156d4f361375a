"""`simulate`: settings in, a `Trace` with `source = "simulated"` out.

The run's `notes` carry the model's assumptions as `sim:KEY=VALUE` entries (the recipes, cores,
workers, GIL switch interval, client times), so a saved trace says what it assumed; the report
turns them into sentences.
"""

from __future__ import annotations

from loopscope.sim.engine import Engine, paused_collection
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.model import Run, Trace

ASSUMPTION = "sim:"
"""The prefix of a simulated run's notes that record an assumption of the model."""


def assumptions(server: ServerModel, load: Load) -> list[str]:
    """The model's settings and recipes as `sim:KEY=VALUE` notes."""
    notes = [
        f"{ASSUMPTION}workers={server.workers}",
        f"{ASSUMPTION}threads={server.threads}",
        f"{ASSUMPTION}executor_threads={server.executor_size}",
        f"{ASSUMPTION}cores={server.cores}",
        f"{ASSUMPTION}steal={server.steal:.2f}",
        f"{ASSUMPTION}switch_ms={server.switch_ms:g}",
        f"{ASSUMPTION}send_ms={server.send_ms:.3g}",
        f"{ASSUMPTION}reply_ms={server.reply_ms:.3g}",
        f"{ASSUMPTION}client_ms={server.client_ms:.3g}",
        f"{ASSUMPTION}times={'exponential' if server.exponential else 'fixed'}",
    ]
    if load.rate is not None:
        notes.append(f"{ASSUMPTION}arrivals=poisson {load.rate:g}/s for {load.duration_s:g} s")
    notes += [f"{ASSUMPTION}recipe {route}={recipe}" for route, recipe in load.recipes.items()]
    return notes


def simulate(server: ServerModel, load: Load, mode: str = "sim", app: str = "model") -> Trace:
    """Run the model of `server` under `load` and return what it predicts, as a `Trace`.

    Times are virtual ns from 0 (the first send); the same seed gives the same trace.
    """
    server.check()
    load.check()
    with paused_collection():
        engine = Engine(server, load)
        engine.run()
        return _trace(engine, server, load, mode, app)


def _trace(engine: Engine, server: ServerModel, load: Load, mode: str, app: str) -> Trace:
    open_loop = load.rate is not None
    run = Run(
        mode=mode,
        app=app,
        source="simulated",
        workers=server.workers,
        threads=server.threads,
        io_ms=load.io_ms,
        users=0 if open_loop else load.users,
        rounds=1 if open_loop else load.rounds,
        scenario=(
            f"open loop: {load.rate:g} requests/s for {load.duration_s:g} s"
            if open_loop
            else f"{load.users} users x {load.rounds} rounds"
        ),
        block_ms=server.block_ms,
        precise=True,
        clock="virtual ns from 0",
        notes=assumptions(server, load),
        probe={"simulated_requests": len(engine.record.requests)},
    )
    return Trace(
        run=run,
        requests=engine.record.requests,
        loop_blocks=engine.record.blocks,
        pool=engine.record.calls,
        pool_samples=engine.record.samples,
        lanes=engine.record.lanes,
    )
