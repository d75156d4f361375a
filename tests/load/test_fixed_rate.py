"""The fixed-rate driver past a real server's capacity: it keeps the server saturated, stays on
its schedule (a request queued for a busy connection is the server's queue, not the driver
falling behind), and charges that queue to the latencies; and its HTTP client reads what real
servers answer (chunked, `connection: close`, HEAD) on both event loops."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import DriverReport, RatePlan, drive
from loopscope.load.outcome import LoadOutcome
from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent / "apps")
BURN_MS = 2.0


@pytest.fixture(scope="module")
def burn() -> Iterator[ServerProcess]:
    # One uvicorn worker whose route burns 2 ms of CPU: at most ~500 req/s, far below what the
    # driver sends from a fraction of a core, even on a loaded machine.
    server = ServerProcess(ServerSettings(app="burn:app", app_dir=APPS))
    with server:
        yield server
    server.close()


def _closed(url: str) -> LoadOutcome:
    # A rate no user keeps up: each of 4 users sends as soon as it has its answer, which keeps
    # one worker busy all the time. What it serves is the server's capacity, as it is now.
    plan = RatePlan(url=url, rate=100_000, duration_s=1.5, connections=4, closed_loop=True)
    return run_fixed_rate(plan)


def test_past_capacity_the_open_loop_serves_what_the_server_can_and_shows_its_queue(
    burn: ServerProcess,
) -> None:
    url = f"{burn.url}/burn?ms={BURN_MS:g}"
    run_fixed_rate(RatePlan(url=url, rate=200, duration_s=0.3, connections=4))  # warm-up
    before = _closed(url)
    capacity = before.achieved_rps
    assert 0 < capacity < 1000 / BURN_MS * 1.1
    # Offered 1.6× what the server serves, on as few connections as the closed loop: every
    # connection is busy with the server, so most requests queue in the driver for one.
    plan = RatePlan(url=url, rate=1.6 * capacity, duration_s=2.0, connections=4, timeout_s=30)
    opened = run_fixed_rate(plan)
    after = _closed(url)
    closed_rps = statistics.mean([before.achieved_rps, after.achieved_rps])

    # Nothing dropped: every request answered (none timed out, none failed).
    assert opened.ok == opened.sent == opened.intended
    assert opened.errors == opened.timeouts == 0
    # The server was kept saturated: served about what the closed loop got from it, beside it
    # (a ratio of two measurements taken moments apart, so a loaded machine slows both).
    assert 0.7 <= opened.achieved_rps / closed_rps <= 1.4, (opened.achieved_rps, closed_rps)
    # Queueing for a connection is not the driver falling behind: the point is reported.
    assert not opened.fell_behind, opened.send_lag_p99_ms
    assert opened.latency is not None
    # ...and the queue is in the latencies: a request's own service is 2 ms, but the backlog
    # grows by 0.6 × capacity every second, so late requests waited a large share of a second.
    assert opened.queued > opened.intended / 4
    assert opened.backlog_max > 10
    assert opened.queue_wait_p99_ms > 100
    assert opened.latency.p99_ms > 100 * BURN_MS
    assert opened.latency.p99_ms >= opened.queue_wait_p99_ms
    # The closed loop never queues in the driver, and its latencies hide the backlog.
    assert before.queued == after.queued == 0
    assert before.latency is not None and before.latency.p99_ms < opened.latency.p50_ms


def test_a_request_that_waits_too_long_for_a_connection_is_a_timeout(burn: ServerProcess) -> None:
    # One connection, 50 ms per answer, 100 requests due in 0.5 s: the backlog outlives the
    # 0.4 s allowed, and those left waiting are counted as timeouts, none dropped.
    plan = RatePlan(
        url=f"{burn.url}/burn?ms=50", rate=200, duration_s=0.5, connections=1, timeout_s=0.4
    )
    outcome = run_fixed_rate(plan)
    assert outcome.timeouts > 0 and outcome.ok > 0
    assert outcome.ok + outcome.errors + outcome.timeouts == outcome.intended == 100
    assert outcome.queued > 0


def _drive(plan: RatePlan, loop: str) -> DriverReport:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(drive(plan))
    return asyncio.run(drive(plan))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    ("path", "method"), [("/chunked", "GET"), ("/close", "GET"), ("/", "HEAD"), ("/", "POST")]
)
def test_the_client_reads_every_kind_of_answer(
    burn: ServerProcess, loop: str, path: str, method: str
) -> None:
    body = {"a": 1} if method == "POST" else None
    plan = RatePlan(
        url=burn.url + path,
        rate=200,
        duration_s=0.1,
        method=method,
        body=body,
        connections=2,
        timeout_s=5,
        keep_requests=20,
    )
    report = _drive(plan, loop)
    assert (report.intended, report.ok, report.errors, report.timeouts) == (20, 20, 0, 0)
    assert {kept["status"] for kept in report.requests} == {200}
    assert [kept["id"] for kept in report.requests] == [f"B{i}" for i in range(1, 21)]
    for kept in report.requests:
        assert kept["intended_ns"] <= kept["issued_ns"] <= kept["send_ns"]
        assert kept["send_ns"] <= kept["first_byte_ns"] <= kept["done_ns"]
    if path == "/close" or method == "HEAD":
        # A connection the server closes (or a HEAD answer) is never reused.
        assert report.connections_opened == 20
    else:
        assert report.connections_opened <= 2


def test_a_server_error_is_counted_as_its_status_not_as_a_dropped_connection(
    burn: ServerProcess,
) -> None:
    # uvicorn closes the connection after an answer the app raised behind, without a
    # `connection: close`. One connection and 30 requests due at once: the next is on the wire
    # before the close arrives, and is sent again on a fresh connection (it never reached the
    # app), so every request is counted once, by the server's own answer.
    plan = RatePlan(url=burn.url + "/boom", rate=10_000, duration_s=0.003, connections=1)
    outcome = run_fixed_rate(plan)
    assert outcome.intended == 30
    assert outcome.error_kinds == {"HTTP 500": 30}
    assert outcome.errors == 30 and outcome.timeouts == 0
