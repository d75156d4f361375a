"""granian (the stretch server model): starts on a port it confirms, serves the demo through
loopscope's target app, stops with no process left behind, and shows the same queueing truth as
uvicorn's one loop."""

from __future__ import annotations

import pytest
from tests.bench.test_gunicorn import group_ends, pids_of_group, post

from loopscope.demo import DemoSettings
from loopscope.measure.bench import BenchOptions, measure_point
from loopscope.server import ServerProcess, ServerSettings
from loopscope.server.models import parse_model


def test_granian_serves_the_demo_and_leaves_no_orphan() -> None:
    settings = ServerSettings(
        app="loopscope.demo:create_app",
        factory=True,
        server="granian",
        workers=2,
        env=DemoSettings(io_ms=0, users=5).to_env(),
    )
    process = ServerProcess(settings)
    with process:
        assert process.pid is not None
        pgid = process.pid
        assert f"Listening at: http://127.0.0.1:{process.port}" in process.log_text()
        status, body = post(f"{process.url}/info/async", {"username": "user3"})
        assert status == 200 and body["username"] == "user3"
        assert len(pids_of_group(pgid)) >= 3
    process.close()
    assert group_ends(pgid)


@pytest.mark.slow
def test_granian_1_async_blocking_serves_about_10_per_second() -> None:
    options = BenchOptions(rates=(20,), duration_s=2.0, io_ms=100)
    measured = measure_point(parse_model("granian:1"), "async-blocking", 20, options)
    assert 7 <= measured.outcome.achieved_rps <= 10.5
    assert measured.saturated
