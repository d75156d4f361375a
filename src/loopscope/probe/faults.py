"""Fault injection: make the probe's own bookkeeping fail on purpose, to prove it never hurts
the app (its failures are counted in `run.probe` and shown in the report, the app's answers are
unchanged).

`LOOPSCOPE_PROBE_FAULTS=step,request` (read once, at install) swaps the probe's `Recorder` for
one whose chosen methods raise `InjectedFault`. The recorder is the one object the C hooks and
their Python twin both call into, so one switch reaches both backends without a line of C:

| fault     | what raises               | who meets it                                     |
|-----------|---------------------------|--------------------------------------------------|
| `step`    | `Recorder.take`           | the loop-step hook (`Handle._run`), every step   |
| `request` | `Recorder.id_taken`       | the middleware, on every tagged request          |
| `pool`    | `Recorder.admit`          | the thread-pool hook, the GC and watchdog stamps |
| `collect` | `Recorder.loop_steps`     | one part of the record's assembly at shutdown    |
"""

from __future__ import annotations

import os
import sys
from typing import Any

from loopscope.probe.recorder import Recorder

ENV_FAULTS = "LOOPSCOPE_PROBE_FAULTS"

FAULTS: dict[str, str] = {
    "step": "take",
    "request": "id_taken",
    "pool": "admit",
    "collect": "loop_steps",
}
"""Fault name → the `Recorder` method that raises."""


class InjectedFault(RuntimeError):
    """Raised by a faulty recorder's method: a failure of the probe, injected on purpose."""


def faults_from_env() -> frozenset[str]:
    """The faults named in `LOOPSCOPE_PROBE_FAULTS` (unknown names are reported and ignored)."""
    names = {n.strip() for n in os.environ.get(ENV_FAULTS, "").split(",") if n.strip()}
    unknown = sorted(names - FAULTS.keys())
    if unknown:
        print(
            f"loopscope: unknown probe faults {', '.join(unknown)} in {ENV_FAULTS}; "
            f"known: {', '.join(FAULTS)}",
            file=sys.stderr,
        )
    return frozenset(names & FAULTS.keys())


def recorder_class(faults: frozenset[str]) -> type[Recorder]:
    """`Recorder`, or a subclass whose methods for `faults` raise `InjectedFault`."""
    if not faults:
        return Recorder

    def failing(fault: str) -> Any:
        def method(self: Recorder, *args: Any, **kwargs: Any) -> Any:
            raise InjectedFault(f"injected probe fault '{fault}'")

        return method

    namespace: dict[str, Any] = {"__slots__": ()}
    namespace.update({FAULTS[fault]: failing(fault) for fault in sorted(faults)})
    if "request" in faults:
        # The C watcher asks `id_taken` only of ids that start with the generated prefix: an
        # empty prefix makes it ask of every request, as the Python twin always does.
        def __init__(self: Recorder, max_events: int, id_prefix: str | None = None) -> None:
            Recorder.__init__(self, max_events, id_prefix="")

        namespace["__init__"] = __init__
    return type("FaultyRecorder", (Recorder,), namespace)
