"""The load: scenarios (what to send) and the driver (send it, stamp it, never be the bottleneck).

Every request carries an `x-loopscope-request` id header, so the probe in the server can put its
records under the same id, and is stamped with `time.monotonic_ns()` at send, first byte and done.

Two kinds of load: closed-loop users (`driver.run_load`: each waits for its answer before its
next send; the demo and `trace`), and open-loop fixed-rate arrivals for `bench`
(`driver_process.run_fixed_rate`: `arrivals` says when each request is due, `fixed_rate` issues
it then from a driver process of its own and counts its latency from that intended time, `wire`
is its lean HTTP/1.1 client whose connections a request queues for when the server keeps them
all busy, `histogram` keeps the percentiles, `outcome` merges the processes and decides whether
the driver kept up).
"""

from loopscope.load.driver import run_load
from loopscope.load.scenarios import (
    Hit,
    Scenario,
    parse_hit,
    seed_scenario,
    uniform_scenario,
    warmup_scenario,
)

__all__ = [
    "Hit",
    "Scenario",
    "parse_hit",
    "run_load",
    "seed_scenario",
    "uniform_scenario",
    "warmup_scenario",
]
