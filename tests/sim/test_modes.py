"""The demo's five modes as built-in recipes reproduce the seed's experiment, measured shape."""

from __future__ import annotations

import itertools

import pytest

from loopscope.sim import mode_model, simulate
from loopscope.trace import STATES, dump_trace, load_trace
from loopscope.trace.analysis import makespan_ns
from loopscope.trace.model import Trace


def finish_s(trace: Trace) -> list[float]:
    return [r.client_done_ns / 1e9 for r in trace.requests]


@pytest.mark.parametrize(
    ("mode", "finish"),
    [
        ("blocking", [1, 1, 1]),
        ("single-thread", [3, 3, 3]),
        ("async-blocking", [1, 2, 3]),
        ("async", [1, 1, 1]),
        ("offload", [1, 1, 1]),
    ],
)
def test_three_users_at_one_second_finish_as_measured(mode: str, finish: list[int]) -> None:
    trace = simulate(*mode_model(mode, users=3, io_ms=1000))
    assert finish_s(trace) == pytest.approx(finish, abs=0.05)
    assert makespan_ns(trace) / 1e9 == pytest.approx(max(finish), abs=0.05)


def test_one_token_ends_all_three_at_t3_because_of_the_second_trip() -> None:
    trace = simulate(*mode_model("single-thread", users=3, io_ms=1000))
    trips = sorted(trace.pool, key=lambda c: c.started_ns or 0)
    # Three endpoint trips one after another, then the three validations queue behind them.
    assert [c.func.rsplit("#", 1)[1] for c in trips] == ["1", "1", "1", "2", "2", "2"]
    assert all(r.pool_hops == 2 for r in trace.requests)


def test_a_simulated_trace_has_the_probes_lanes_and_states() -> None:
    states = set()
    lanes = set()
    for mode in ("blocking", "async-blocking", "async", "single-thread"):
        trace = simulate(*mode_model(mode, users=3, io_ms=100))
        assert trace.run.source == "simulated"
        states |= {s.state for r in trace.requests for s in r.segments}
        lanes |= {s.lane.split(":")[0] for s in trace.lanes}
        for r in trace.requests:
            ends = [(s.start_ns, s.end_ns) for s in r.segments]
            assert ends[0][0] == r.client_send_ns
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    assert states == set(STATES)
    assert lanes == {"loop", "thread"}


def test_a_blocking_step_on_the_loop_is_a_loop_block_named_by_its_step() -> None:
    trace = simulate(*mode_model("async-blocking", users=3, io_ms=100))
    assert [b.where for b in trace.loop_blocks] == ["io:100 in /login/async-blocking"] + [
        f"io:100 in /{a}/async-blocking" for a in ("info", "history")
    ]
    assert trace.loop_blocks[0].delayed == ["R2", "R3"]


def test_a_simulated_trace_saves_and_loads_back(tmp_path: object) -> None:
    from pathlib import Path

    trace = simulate(*mode_model("offload", users=5, io_ms=50))
    path = dump_trace(trace, Path(str(tmp_path)) / "sim.json")
    assert load_trace(path) == trace
