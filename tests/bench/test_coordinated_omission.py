"""Coordinated omission, shown on one server that stalls its loop for 1 s, once.

Open loop (latency from the intended send): the requests due during the stall wait for it, and
the corrected p99 shows the stall. Closed loop (one user, the same schedule, latency from the
actual send, as most load tools measure): the user waits out the stall on one request and is
then simply late; the stall is one sample in ~150, and the p99 does not show it.
"""

from __future__ import annotations

from pathlib import Path

from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import RatePlan
from loopscope.load.outcome import LoadOutcome
from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent / "apps")
RATE, SECONDS = 50.0, 4.0


def against_a_stall(closed_loop: bool) -> LoadOutcome:
    # A fresh server each time: the stall comes on its 60th request, ~1.2 s into the run.
    server = ServerProcess(ServerSettings(app="stall:app", app_dir=APPS))
    with server:
        plan = RatePlan(
            url=server.url + "/stall",
            rate=RATE,
            duration_s=SECONDS,
            closed_loop=closed_loop,
            connections=1 if closed_loop else 512,
        )
        outcome = run_fixed_rate(plan)
    server.close()
    return outcome


def test_the_corrected_p99_shows_a_stall_that_a_closed_loop_hides() -> None:
    open_loop = against_a_stall(closed_loop=False)
    closed = against_a_stall(closed_loop=True)
    opened, hidden = open_loop.latency, closed.latency
    assert opened is not None and hidden is not None

    # Both runs met the stall: each saw one request of about a second.
    assert opened.max_ms >= 900 and hidden.max_ms >= 900
    # Open loop: ~50 requests were due during the stall; their wait is in the percentiles.
    assert open_loop.sent == open_loop.intended == RATE * SECONDS
    assert opened.p99_ms >= 500
    # Closed loop: the user sent less (it waited), and its p99 is that of a healthy server.
    assert closed.sent < closed.intended == open_loop.sent
    # Sending late is what a closed loop does by design: that is not the driver falling behind.
    assert not closed.fell_behind
    # The closed loop's p99 is far from the stall (a few ms on a quiet machine; on a loaded one
    # a couple of its ~150 requests may take 200 ms, which is still no second-long stall).
    assert hidden.p99_ms < 400
    assert opened.p99_ms > 2 * hidden.p99_ms
