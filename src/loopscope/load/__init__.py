"""The load: scenarios (what to send) and the driver (send it, stamp it, never be the bottleneck).

Every request carries an `x-loopscope-request` id header, so the probe in the server can put its
records under the same id, and is stamped with `time.monotonic_ns()` at send, first byte and done.
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
