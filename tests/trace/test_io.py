"""Trace files: a round trip keeps everything; a bad file gets an error that names the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopscope.errors import TraceError, TraceFormatError
from loopscope.trace import (
    LoopBlock,
    PoolCall,
    PoolSample,
    Request,
    Run,
    Segment,
    Trace,
    dump_trace,
    load_trace,
    trace_to_dict,
)


def _trace() -> Trace:
    segments = [
        Segment("request:R1", "queued", 0, 10, None, None, "R1"),
        Segment("request:R1", "loop-blocked", 10, 1_000, 5, "app/db.py:7", "R1"),
    ]
    return Trace(
        run=Run(mode="async-blocking", app="app:app", io_ms=1.0, users=1, notes=["a note"]),
        requests=[
            Request(
                "R1",
                "POST",
                "/login/x",
                "/login/{v}",
                200,
                0,
                1_100,
                900,
                10,
                1_050,
                size=30,
                user=0,
                loop_steps=3,
                longest_step_ns=990,
                pool_hops=0,
                segments=segments,
            )
        ],
        loop_blocks=[LoopBlock(10, 1_000, 5, "R1", "app/db.py:7", ["app/db.py:7 in get"])],
        pool=[PoolCall("R1", "get_user", 5, 6, 9, "AnyIO worker thread", 1)],
        pool_samples=[PoolSample(5, 1, 40, 0)],
        lanes=[Segment("loop:1", "loop-blocked", 10, 1_000, 5, "app/db.py:7", "R1")],
    )


def test_a_trace_survives_a_round_trip_through_a_file(tmp_path: Path) -> None:
    trace = _trace()
    loaded = load_trace(dump_trace(trace, tmp_path / "t.json"))
    assert loaded == trace


def test_the_file_starts_with_its_version_and_has_the_contracted_keys(tmp_path: Path) -> None:
    data = json.loads(dump_trace(_trace(), tmp_path / "t.json").read_text())
    assert next(iter(data)) == "version" and data["version"] == 2
    assert {"run", "requests", "loop_blocks", "pool"} <= set(data)
    request = data["requests"][0]
    assert {"id", "method", "path", "route", "status", "client_send_ns", "client_done_ns"} <= set(
        request
    )
    assert set(request["segments"][0]) >= {"lane", "state", "start_ns", "end_ns", "cpu_ns", "where"}
    assert set(data["loop_blocks"][0]) >= {
        "start_ns",
        "end_ns",
        "cpu_ns",
        "request_id",
        "where",
        "stack",
    }


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=3), "version 3 is not supported"),
        (lambda d: d.pop("run"), "not a loopscope trace"),
        (
            lambda d: d["requests"][0]["segments"][1].update(state="sleeping"),
            "requests[0].segments[1].state: Input should be 'queued', 'on-loop'",
        ),
        (
            lambda d: d["requests"][0].update(client_send_ns="soon"),
            "requests[0].client_send_ns: Input should be a valid integer",
        ),
        (lambda d: d["requests"][0].pop("id"), "requests[0].id: Field required"),
        (lambda d: d["loop_blocks"][0].update(kind="cosmic"), "loop_blocks[0].kind"),
        (lambda d: d.update(pool={}), "pool: Input should be a valid array"),
        (lambda d: d["run"].update(precise="yes"), "run.precise: Input should be a valid boolean"),
        (lambda d: d["requests"][0].update(status=True), "requests[0].status"),
        (lambda d: d["requests"][0].update(status=200.0), "requests[0].status"),
        (lambda d: d["run"].update(colour="blue"), "run.colour: Unexpected keyword argument"),
    ],
)
def test_a_corrupt_trace_names_the_bad_value(tmp_path: Path, mutate: object, message: str) -> None:
    data = trace_to_dict(_trace())
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_a_version_1_trace_still_reads(tmp_path: Path) -> None:
    data = trace_to_dict(_trace())
    data["version"] = 1
    del data["run"]["probe_failures"]
    for request in data["requests"]:
        del request["worker"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert load_trace(path) == _trace()


def test_a_file_that_is_not_json_says_where_it_broke(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"version": 1,\n "run": ')
    with pytest.raises(TraceFormatError, match=r"not valid JSON \(line 2"):
        load_trace(path)


def test_a_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="Cannot read"):
        load_trace(tmp_path / "nope.json")


def test_a_foreign_json_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "package.json"
    path.write_text('{"name": "left-pad", "version": "1.3.0"}')
    with pytest.raises(TraceFormatError, match="not a loopscope trace"):
        load_trace(path)
