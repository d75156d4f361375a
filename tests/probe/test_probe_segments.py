"""Deriving blocks, segments and lanes from raw records: pure functions on hand-made records.

Times are milliseconds after an arbitrary `T` on the monotonic clock, as the hooks would have
stamped them; no clock is read here.
"""

from __future__ import annotations

from loopscope.probe.blocks import attribute_to_lone_request, block_from_step
from loopscope.probe.collect import server_record
from loopscope.probe.recorder import Recorder, RequestRecord, StackSamples
from loopscope.trace.model import LoopBlock, PoolCall
from loopscope.trace.record import ServerRecord

MS = 1_000_000
T = 5_000 * 1_000 * MS
CPU0 = 77 * MS


def at(ms: float) -> int:
    return T + int(ms * MS)


def painted(record: ServerRecord, request_id: str) -> list[tuple[str, float, float]]:
    return [
        (s.state, (s.start_ns - T) / MS, (s.end_ns - T) / MS)
        for s in record.request(request_id).segments
    ]


def collect(recorder: Recorder, *, precise: bool = True) -> ServerRecord:
    return server_record(recorder, pid=42, loop="asyncio", precise=precise, block_ms=20.0)


def test_a_lane_is_painted_from_steps_thread_pool_trips_and_ready_stamps() -> None:
    recorder = Recorder(100)
    recorder.store_request(
        "r", RequestRecord("GET", "/x", start_ns=at(1), end_ns=at(90), first_step_ns=at(0))
    )
    recorder.store_steps(
        [
            (at(0), at(2), 0, None, 0),  # the middleware set the id during this step
            (at(30), at(35), 0, "r", at(25)),
            (at(85), at(91), 0, "r", at(82)),
        ]
    )
    recorder.pool.append(PoolCall("r", "app.work", at(34), at(40), at(80), "W #1", cpu_ns=4 * MS))

    record = collect(recorder)

    assert painted(record, "r") == [
        ("on-loop", 1, 2),
        ("awaiting", 2, 25),
        ("ready", 25, 30),
        ("on-loop", 30, 35),
        ("pool-wait", 35, 40),
        ("in-thread", 40, 80),
        ("ready", 80, 85),  # the result waits for the loop, whatever the wake-up stamp says
        ("on-loop", 85, 90),
    ]
    request = record.request("r")
    assert (request.loop_steps, request.longest_step_ns) == (3, 6 * MS)
    in_thread = [s for s in request.segments if s.state == "in-thread"]
    assert in_thread[0].cpu_ns == 4 * MS
    assert record.loop_blocks == []


def _blocking_records() -> Recorder:
    recorder = Recorder(100)
    recorder.store_request("a", RequestRecord("GET", "/a", start_ns=at(0), end_ns=at(31)))
    recorder.store_request("b", RequestRecord("GET", "/b", start_ns=at(-10), end_ns=at(40)))
    recorder.store_request("c", RequestRecord("GET", "/c", start_ns=at(30.5), end_ns=at(33)))
    recorder.store_steps(
        [
            (at(1), at(30), CPU0 + 25 * MS, "a", 0),
            (at(30.2), at(30.4), 0, "b", at(10)),  # woke at 10 ms, ran only after the block
            (at(30.5), at(31), 0, "c", 0),
        ]
    )
    samples = StackSamples(cpu_start_ns=CPU0)
    for where in ("app.py:3", "app.py:3", "lib.py:9"):
        samples.add(where, ["app.py:1 in route", f"{where} in helper"])
    recorder.samples[at(1)] = samples
    return recorder


def test_a_long_step_is_a_block_with_its_line_cpu_time_and_delayed_requests() -> None:
    record = collect(_blocking_records())

    (block,) = record.loop_blocks
    assert (block.start_ns, block.end_ns, block.request_id) == (at(1), at(30), "a")
    assert (block.where, block.stack[-1], block.kind) == ("app.py:3", "app.py:3 in helper", "code")
    assert block.cpu_ns == 25 * MS
    assert block.delayed == ["b", "c"]
    (blocked,) = [s for s in record.request("a").segments if s.state == "loop-blocked"]
    assert (blocked.where, blocked.cpu_ns) == ("app.py:3", 25 * MS)
    assert ("ready", 10, 30.2) in painted(record, "b")


def test_a_block_mostly_covered_by_garbage_collection_is_labelled_gc() -> None:
    recorder = _blocking_records()
    recorder.gc_pauses.append((at(5), at(25)))

    (block,) = collect(recorder).loop_blocks

    assert (block.kind, block.where) == ("gc", None)


def test_the_loop_lane_coalesces_close_steps_of_one_request_only() -> None:
    recorder = _blocking_records()
    later = recorder.loop_steps()
    recorder.steps.clear()
    recorder.store_steps(
        [
            (at(-5), at(-4.9), 0, "b", 0),
            (at(-4.8), at(-4.7), 0, "b", 0),  # 0.1 ms later: same run
            (at(-4.65), at(-4.6), 0, None, 0),  # another owner: a new run
            (at(-2), at(-1.9), 0, "b", 0),  # 2.7 ms later: a new run
            *later,
        ]
    )

    lane = [
        (s.state, s.request_id, (s.start_ns - T) / MS, (s.end_ns - T) / MS)
        for s in collect(recorder).lanes
        if s.lane == "loop:42"
    ]

    assert lane[:5] == [
        ("on-loop", "b", -5, -4.7),
        ("on-loop", None, -4.65, -4.6),
        ("on-loop", "b", -2, -1.9),
        ("loop-blocked", "a", 1, 30),
        ("on-loop", "b", 30.2, 30.4),
    ]


def test_watchdog_mode_lanes_hold_the_blocks_and_pool_trips_seen() -> None:
    recorder = Recorder(100)
    recorder.store_request("r", RequestRecord("GET", "/x", start_ns=at(0), end_ns=at(100)))
    recorder.watch_blocks.append(LoopBlock(at(5), at(40), 1 * MS, "r", "app.py:7"))
    recorder.pool.append(PoolCall("r", "app.work", at(50), at(55), at(90), "W #1", cpu_ns=MS))

    record = collect(recorder, precise=False)

    assert painted(record, "r") == [
        ("loop-blocked", 5, 40),
        ("pool-wait", 50, 55),
        ("in-thread", 55, 90),
    ]
    assert record.request("r").loop_steps is None
    assert [b.where for b in record.loop_blocks] == ["app.py:7"]
    lanes = {(s.lane, s.state) for s in record.lanes}
    assert lanes == {("loop:42", "loop-blocked"), ("thread:W #1", "in-thread")}


def test_the_event_budget_counts_what_it_refuses() -> None:
    recorder = Recorder(2)
    assert recorder.admit() and recorder.admit()
    assert not recorder.admit()
    assert recorder.take(5) == 0
    assert (recorder.used, recorder.dropped) == (2, 1)


def test_a_wait_for_the_pool_while_another_request_blocks_the_loop_is_ready_not_pool_wait() -> None:
    recorder = Recorder(100)
    recorder.store_request("sync", RequestRecord("GET", "/sync", start_ns=at(0), end_ns=at(200)))
    recorder.store_request("blocker", RequestRecord("GET", "/b", start_ns=at(9), end_ns=at(120)))
    recorder.store_steps(
        [
            (at(0), at(10), 0, "sync", 0),
            (at(10), at(110), 0, "blocker", at(10)),  # holds the loop for 100 ms
            (at(190), at(200), 0, "sync", at(185)),
        ]
    )
    recorder.samples[at(10)] = StackSamples(cpu_start_ns=CPU0, request_id="blocker")
    # Submitted just before the block; the worker only started once the loop turned again.
    recorder.pool.append(PoolCall("sync", "work", at(10), at(115), at(185), "W #1", cpu_ns=0))

    record = collect(recorder)

    states = painted(record, "sync")
    assert ("ready", 10, 110) in states
    assert ("pool-wait", 110, 115) in states
    assert all(not (s == "pool-wait" and a < 110) for s, a, _ in states)


def test_a_heartbeat_block_with_no_request_goes_to_the_one_request_in_flight() -> None:
    requests = {
        "before": RequestRecord("GET", "/a", start_ns=at(0), end_ns=at(5)),
        "during": RequestRecord("GET", "/b", start_ns=at(10), end_ns=at(60)),
    }
    block = LoopBlock(at(20), at(50), None, None, None, [])
    attribute_to_lone_request(block, requests)
    assert block.request_id == "during"

    requests["also"] = RequestRecord("GET", "/c", start_ns=at(40), end_ns=None)
    unclear = LoopBlock(at(20), at(50), None, None, None, [])
    attribute_to_lone_request(unclear, requests)
    assert unclear.request_id is None


def test_a_long_step_no_sample_caught_is_a_block_with_no_line_and_no_guess() -> None:
    block = block_from_step((at(0), at(50), 0, "r", 0), None)
    assert (block.where, block.inner, block.stack) == (None, None, [])
    assert (block.cpu_ns, block.runnable_ns, block.process_cpu_ns) == (None, None, None)


def test_a_late_sample_does_not_outvote_samples_that_found_no_line() -> None:
    samples = StackSamples()
    for t in range(3):
        samples.add(None, ["argon2/low_level.py:102 in hash_secret"], None, at(t))
    samples.add("app.py:9", ["app.py:9 in after"], None, at(10))
    assert samples.best()[0] is None
    assert samples.best(before_ns=at(10))[0] is None
    lone = StackSamples()
    lone.add("app.py:9", ["app.py:9 in after"], None, at(10))
    assert lone.best(before_ns=at(10))[0] is None  # a late sample alone is no culprit
    assert lone.best()[0] == "app.py:9"  # precise mode: taken while the step still ran
