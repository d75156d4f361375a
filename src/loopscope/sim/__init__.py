"""The simulator: a SimPy model of uvicorn workers (event loop + thread pool, GIL) on shared cores.

Routes are recipes of steps (`loopscope.sim.recipe`), built in for the demo's modes
(`loopscope.sim.builtin`), written by the user, or fitted from a measured trace
(`loopscope.sim.calibrate`). `simulate()` runs the model (`loopscope.sim.engine`) and returns a
`Trace` with `run.source = "simulated"`, which the same analysis and reports read. This package
imports only `loopscope.trace` (and `loopscope.errors`) and SimPy, and starts no process.
"""

from loopscope.sim.builtin import MODES, mode_model, simulate_like
from loopscope.sim.calibrate import Calibration, calibrate
from loopscope.sim.change import apply_change
from loopscope.sim.plan import Plan, SimOptions, plan
from loopscope.sim.recipe import Recipe, parse_items, parse_route
from loopscope.sim.run import simulate
from loopscope.sim.settings import Load, ServerModel

__all__ = [
    "MODES",
    "Calibration",
    "Load",
    "Plan",
    "Recipe",
    "ServerModel",
    "SimOptions",
    "apply_change",
    "calibrate",
    "mode_model",
    "parse_items",
    "parse_route",
    "plan",
    "simulate",
    "simulate_like",
]
