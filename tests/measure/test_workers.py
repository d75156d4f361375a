"""`--workers N` against real uvicorn: one probe per worker, merged into one trace; a worker that
dies and its replacement; what `--loop`/`--http` really ran. Both probe backends (C and its
Python twin) where the probe matters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.load import parse_hit, uniform_scenario
from loopscope.measure.run import describe_run, measure
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.report.console import trace_summary
from loopscope.report.timeline import render_timeline
from loopscope.server import ServerSettings
from loopscope.trace.analysis import top_loop_blocks
from loopscope.trace.model import Trace
from loopscope.trace.processes import worker_spread

APPS = Path(__file__).parents[1] / "apps"
APP = "workers_app:app"


def _line(mark: str) -> str:
    for number, text in enumerate((APPS / "workers_app.py").read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {mark}: the line the tests expect"):
            return f"workers_app.py:{number}"
    raise AssertionError(mark)


def _trace(
    hits: list[str], users: int, rounds: int, warmup: bool = True, **settings: object
) -> Trace:
    server = ServerSettings(app=APP, app_dir=str(APPS), probe=True, **settings)  # type: ignore[arg-type]
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, rounds)
    return measure(server, scenario, describe_run(server, scenario, "trace"), warmup=warmup)


@pytest.fixture(params=["c", "python"])
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    yield {PURE_PYTHON_ENV: "1"} if request.param == "python" else {}


def test_two_workers_give_one_trace_with_a_loop_lane_each_and_blocks_in_whichever_worker(
    backend_env: dict[str, str],
) -> None:
    # `close=1` makes every answer end its connection, so the users reconnect and a connection
    # waiting while one worker's loop is blocked is taken by the other: both workers serve.
    hits = ["GET /block?ms=120&close=1", "GET /crunch?ms=60&close=1", "GET /nap?ms=120&close=1"]
    trace = _trace(hits, users=4, rounds=2, workers=2, loop="asyncio", env=backend_env)

    assert len(trace.requests) == 24 and all(r.status == 200 for r in trace.requests)
    pids = {w.pid for w in trace.workers}
    assert len(pids) == 2 and all(w.recorded and w.ended_ns is None for w in trace.workers)
    assert trace.run.precise and trace.run.loop == "asyncio"
    # Every request is tagged with the worker that served it, and that worker's loop lane
    # shows the request's own blocks.
    assert all(r.worker in pids for r in trace.requests)
    by_id = {r.id: r for r in trace.requests}
    blocked = [s for s in trace.lanes if s.state == "loop-blocked" and s.request_id]
    assert blocked
    for segment in blocked:
        assert segment.lane == f"loop:{by_id[segment.request_id].worker}"
    # Blocks at the right line and request, CPU vs waiting told apart, in both workers.
    expected = {
        "GET /block": (_line("BLOCKS HERE"), False),
        "GET /crunch": (_line("CPU HERE"), True),
    }
    lines = {where for where, _ in expected.values()}
    for block in trace.loop_blocks:
        assert block.request_id is not None
        where, _ = expected[by_id[block.request_id].endpoint]
        if block.where is None:
            # A machine too busy to schedule the watchdog thread during a 60 ms block leaves it
            # without a stack sample and without CPU ticks; the report says "not sampled".
            assert block.cpu_ns is None and not block.stack, block
            continue
        assert block.where == where
    # CPU vs waiting as the report says it (time the thread waited for a core is neither).
    groups = {g.where: g.cpu_bound for g in top_loop_blocks(trace) if g.where in lines}
    assert groups == dict(expected.values())
    blocking = {by_id[b.request_id].worker for b in trace.loop_blocks if b.request_id}
    assert blocking, "the blocking routes should have blocked some worker's loop"
    # The sleeping route awaits (≥ 100 ms), and no block is blamed on it.
    for request in trace.requests:
        if request.endpoint == "GET /nap":
            awaiting = sum(s.duration_ns for s in request.segments if s.state == "awaiting")
            assert awaiting >= 100_000_000
            assert not any(b.request_id == request.id for b in trace.loop_blocks)
    # One loop lane per worker in the timeline, an idle worker's too.
    svg = render_timeline(trace)
    for pid in pids:
        assert f'data-lane="loop:{pid}"' in svg


def test_a_worker_that_dies_is_seen_dying_and_its_replacement_starting(tmp_path: Path) -> None:
    once = tmp_path / "died"
    # The load goes on for about 12 x 400 ms after the death: uvicorn's supervisor notices
    # within about a second, and the replacement's start (imports, the probe) takes a few more
    # on a loaded machine; it is seen only if it starts while the run lasts.
    hits = ["GET /nap?ms=400&close=1", f"GET /die?once={once}"]
    trace = _trace(hits, users=3, rounds=12, workers=2, loop="asyncio", warmup=False)

    assert once.exists()
    died = [w for w in trace.workers if w.ended_ns is not None]
    assert len(died) == 1, trace.workers
    dead = died[0]
    assert not dead.recorded  # os._exit: the probe had no chance to write
    assert trace.run.started_ns <= dead.ended_ns <= max(r.done_ns for r in trace.requests)
    replacements = [w for w in trace.workers if (w.started_ns or 0) > dead.ended_ns]
    assert len(replacements) == 1 and replacements[0].recorded
    spread = worker_spread(trace)
    assert spread is not None and [w.pid for w in spread.died] == [dead.pid]
    text = " ".join(str(part) for part in trace_summary(trace))
    assert f"Worker pid {dead.pid} died at" in text
    assert f"Worker pid {replacements[0].pid} started at" in text


@pytest.mark.parametrize(("loop", "http"), [("asyncio", "h11"), ("auto", "auto")])
def test_the_run_records_the_loop_and_protocol_that_really_ran(loop: str, http: str) -> None:
    trace = _trace(["GET /pid"], users=1, rounds=1, loop=loop, http=http)

    if loop == "auto":
        # What uvicorn's own `auto` picks: uvloop and httptools whenever they are importable.
        expected_loop = "uvloop" if _importable("uvloop") else "asyncio"
        expected_http = "httptools" if _importable("httptools") else "h11"
    else:
        expected_loop, expected_http = loop, http
    assert (trace.run.loop, trace.run.http) == (expected_loop, expected_http)
    assert [(w.loop, w.http) for w in trace.workers] == [(expected_loop, expected_http)]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_an_uneven_spread_is_said_with_the_measured_ratio() -> None:
    trace = _trace(["GET /nap?ms=50"], users=4, rounds=3, workers=2, loop="asyncio")

    spread = worker_spread(trace)
    assert spread is not None
    served = Counter(r.worker for r in trace.requests)
    assert sum(w.served for w in spread.workers) == sum(served.values()) == 12
    busiest = max(served.values())
    assert spread.busiest_ratio == pytest.approx(busiest / 6)
    text = " ".join(str(part) for part in trace_summary(trace))
    assert "Requests served per worker process:" in text
    if spread.busiest_ratio >= 1.5:
        assert f"({spread.busiest_ratio:.1f}× an even share)" in text
