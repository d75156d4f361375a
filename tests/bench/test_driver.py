"""The fixed-rate driver against real servers: it keeps its schedule, measures the server and
not itself, counts every failure, refuses a point where it fell behind, and agrees with
Little's law."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import DriverReport, RatePlan
from loopscope.load.outcome import merge_reports
from loopscope.server import ServerProcess, ServerSettings, free_port

APPS = str(Path(__file__).parent / "apps")


@pytest.fixture(scope="module")
def trivial() -> Iterator[ServerProcess]:
    server = ServerProcess(ServerSettings(app="trivial:app", app_dir=APPS))
    with server:
        yield server
    server.close()


def test_two_driver_processes_share_the_rate_and_merge_their_counts(
    trivial: ServerProcess,
) -> None:
    plan = RatePlan(url=trivial.url + "/", rate=100, duration_s=1.0)
    seen: list[tuple[int, int]] = []
    outcome = run_fixed_rate(plan, processes=2, progress=lambda d, t: seen.append((d, t)))
    assert (outcome.intended, outcome.sent, outcome.ok, outcome.errors) == (100, 100, 100, 0)
    assert outcome.latency is not None and outcome.latency.count == 100
    assert outcome.send_rate == pytest.approx(100, rel=0.1)
    assert not outcome.fell_behind
    assert 0 < outcome.driver_cpu < 1
    assert seen and seen[-1] == (100, 100)


def test_connection_failures_are_counted_not_dropped() -> None:
    # Nothing listens on this port: every request fails to connect, and each one is counted.
    plan = RatePlan(url=f"http://127.0.0.1:{free_port()}/", rate=50, duration_s=0.4, timeout_s=2)
    outcome = run_fixed_rate(plan)
    assert outcome.sent == outcome.intended == 20
    assert outcome.errors == 20 and outcome.ok == 0
    assert outcome.latency is None
    assert set(outcome.error_kinds) == {"connect: ConnectionRefusedError"}


def test_timeouts_are_counted_not_dropped(trivial: ServerProcess) -> None:
    stall = ServerProcess(ServerSettings(app="stall:app", app_dir=APPS))
    with stall:
        # The 60th request stalls the loop for 1 s; with 0.3 s allowed, those caught in the
        # stall time out and are counted as such, the others answer.
        plan = RatePlan(url=stall.url + "/stall", rate=100, duration_s=1.0, timeout_s=0.3)
        outcome = run_fixed_rate(plan)
    stall.close()
    assert outcome.timeouts > 0
    assert outcome.ok + outcome.timeouts + outcome.errors == outcome.intended == 100


def test_a_driver_asked_for_more_than_it_can_send_refuses_the_point(
    trivial: ServerProcess,
) -> None:
    # Far past what one Python process can even issue on this machine (a request waiting for a
    # busy connection costs the driver little, so this is a million a second): it must say so,
    # not report its own lateness as the server's latency.
    plan = RatePlan(
        url=trivial.url + "/", rate=1_000_000, duration_s=0.2, connections=64, timeout_s=0.5
    )
    outcome = run_fixed_rate(plan, cpus=(0,))
    assert outcome.fell_behind
    assert outcome.latency is None
    assert outcome.measured is not None  # kept, but never shown as the server's


def test_the_rule_for_falling_behind_is_the_send_lag_or_the_share_sent() -> None:
    plan = RatePlan(url="http://127.0.0.1:1/", rate=10, duration_s=1)
    on_time = DriverReport(intended=10, sent=10, send_lag_p99_ms=3, histogram=_empty())
    late = DriverReport(intended=10, sent=10, send_lag_p99_ms=500, histogram=_empty())
    short = DriverReport(intended=10, sent=8, send_lag_p99_ms=3, histogram=_empty())
    assert not merge_reports(plan, [on_time], 1).fell_behind
    assert merge_reports(plan, [late], 1).fell_behind
    assert merge_reports(plan, [short], 1).fell_behind


def _empty() -> str:
    from loopscope.load.histogram import LatencyHistogram

    return LatencyHistogram().encode()
