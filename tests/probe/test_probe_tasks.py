"""Precise mode under uvloop (in-process): every task step timed, every thread seen.

uvloop's handles are compiled, so the probe times the steps of the tasks the loop creates (a
task factory wraps each task's coroutine) and notes when a request's task became runnable
(`uvloop.Loop.call_soon`, `call_at`, `call_later`). Each test runs a real uvloop loop and a real
ASGI app with the C hooks and again with their Python twin.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import Counter
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import uvloop

from loopscope.probe import installed
from loopscope.probe.context import REQUEST_ID
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.trace.record import ServerRecord, ServerRequest

Message = MutableMapping[str, Any]
MS = 1_000_000


@pytest.fixture(autouse=True, params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the probe's C hooks and again with its pure-Python ones."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _slow_export(name: str) -> str:
    time.sleep(0.06)
    return name


async def _app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/sleep":
        await asyncio.sleep(0.06)
    elif path == "/block":
        time.sleep(0.06)  # mark: task-block
    elif path == "/to-thread":
        await asyncio.to_thread(_slow_export, "a")
    elif path == "/own-pool":
        await asyncio.get_running_loop().run_in_executor(scope["pool"], _slow_export, "b")
    elif path == "/sqlite":
        async with aiosqlite.connect(scope["db"]) as db:
            await db.execute("SELECT 1")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


_BLOCK_LINE = next(
    number
    for number, text in enumerate(Path(__file__).read_text().splitlines(), start=1)
    if text.endswith("# mark: task-block")
)


async def _request(app: Any, path: str, request_id: str, **extra: Any) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"x-loopscope-request", request_id.encode())],
        **extra,
    }
    await app(scope, receive, send)


def _serve(paths: list[tuple[str, str]], tmp_path: Path, **probe: Any) -> ServerRecord:
    """Run each `(path, request_id)` as its own task on a fresh uvloop loop, as uvicorn does."""
    with (
        installed(block_ms=20, **probe) as installed_probe,
        ThreadPoolExecutor(2, thread_name_prefix="reports") as pool,
    ):
        wrapped = installed_probe.asgi(_app)

        async def main() -> None:
            # The first call lets the probe see the loop (uvicorn's lifespan call does so).
            await _request(wrapped, "/", "first")
            await asyncio.sleep(0.03)  # the watchdog's first ticks, as during uvicorn's start-up
            loop = asyncio.get_running_loop()
            extra = {"pool": pool, "db": str(tmp_path / "t.db")}
            tasks = [loop.create_task(_request(wrapped, p, rid, **extra)) for p, rid in paths]
            await asyncio.gather(*tasks)
            await asyncio.sleep(0.03)  # the watchdog's last ticks, as before uvicorn stops

        uvloop.run(main())
        return installed_probe.collect()


def _time_in(request: ServerRequest, state: str) -> int:
    return sum(s.duration_ns for s in request.segments if s.state == state)


def test_under_uvloop_every_task_step_is_timed_and_each_request_gets_its_segments(
    tmp_path: Path,
) -> None:
    record = _serve([("/sleep", "sleepy"), ("/block", "blocker")], tmp_path)
    assert (record.loop, record.precise) == ("uvloop", True)
    assert record.counts.steps > 0

    sleepy = record.request("sleepy")
    assert sleepy.loop_steps is not None and sleepy.loop_steps >= 2
    assert _time_in(sleepy, "awaiting") >= 50 * MS
    assert {s.state for s in sleepy.segments} >= {"on-loop", "awaiting"}

    blocker = record.request("blocker")
    assert blocker.longest_step_ns is not None and blocker.longest_step_ns >= 55 * MS
    (block,) = record.loop_blocks
    assert block.request_id == "blocker"
    assert block.where is not None and block.where.endswith(f"test_probe_tasks.py:{_BLOCK_LINE}")
    assert block.cpu_ns is not None and block.cpu_ns < block.duration_ns * 0.5
    assert _time_in(blocker, "loop-blocked") >= 55 * MS


def test_a_sleep_that_ends_while_another_request_blocks_the_loop_is_ready_not_awaiting(
    tmp_path: Path,
) -> None:
    # The sleeper's 60 ms end inside the blocker's 60 ms step, which started just after it.
    record = _serve(
        [("/sleep", "sleepy"), ("/block", "blocker"), ("/block", "blocker-2")], tmp_path
    )
    sleepy = record.request("sleepy")
    assert 50 * MS <= _time_in(sleepy, "awaiting") < 80 * MS
    assert _time_in(sleepy, "ready") >= 30 * MS
    assert not [b for b in record.loop_blocks if b.request_id == "sleepy"]


def test_every_thread_a_request_waits_on_is_seen_with_its_executor(tmp_path: Path) -> None:
    record = _serve(
        [
            ("/to-thread", "t"),
            ("/sqlite", "db"),
            ("/own-pool", "p1"),
            ("/own-pool", "p2"),
            ("/own-pool", "p3"),
        ],
        tmp_path,
    )
    executors = Counter((c.request_id, c.executor) for c in record.pool)
    assert executors[("t", "uvloop")] == 1  # uvloop's default executor
    assert executors[("p1", "reports")] == executors[("p3", "reports")] == 1
    assert executors[("db", "aiosqlite")] >= 2  # the execute, then the close
    own = [c for c in record.pool if c.executor == "reports"]
    assert {c.thread for c in own} == {"reports_0", "reports_1"}
    assert {c.capacity for c in own} == {2}
    assert {c.func for c in own} == {f"{__name__}._slow_export"}
    # Two threads for three calls: one waited for a free thread, in the pool's queue.
    waits = sorted(c.started_ns - c.submitted_ns for c in own if c.started_ns is not None)
    assert waits[-1] >= 40 * MS
    for request_id in ("t", "p1", "p2", "p3"):
        request = record.request(request_id)
        # 60 ms in the thread; the submitting step may still run at its start (a busy machine).
        assert _time_in(request, "in-thread") >= 40 * MS, request_id
        assert not [b for b in record.loop_blocks if b.request_id == request_id]
    assert max(_time_in(record.request(r), "pool-wait") for r in ("p1", "p2", "p3")) >= 40 * MS
    lanes = {s.lane for s in record.lanes}
    assert {"thread:reports_0", "thread:reports_1"} <= lanes


def test_precise_false_under_uvloop_runs_the_heartbeat_only(tmp_path: Path) -> None:
    record = _serve([("/block", "blocker")], tmp_path, precise=False)
    assert (record.loop, record.precise, record.counts.steps) == ("uvloop", False, 0)
    (block,) = record.loop_blocks
    assert block.request_id == "blocker"


def test_uninstall_puts_back_uvlooops_methods_and_the_task_factory(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        with installed(block_ms=20) as probe:
            wrapped = probe.asgi(_app)
            await _request(wrapped, "/", "first")
            loop = asyncio.get_running_loop()
            seen["hooked"] = {n for n in ("call_soon", "call_at") if n in type(loop).__dict__}
            seen["factory"] = loop.get_task_factory()
        seen["after"] = {
            n for n in ("call_soon", "call_at", "call_later") if n in vars(uvloop.Loop)
        }
        seen["factory_after"] = loop.get_task_factory()

    uvloop.run(main())
    assert seen["hooked"] == {"call_soon", "call_at"}
    assert seen["factory"] is not None
    assert seen["after"] == set()
    assert seen["factory_after"] is None


def test_tasks_made_with_keywords_keep_them_and_are_timed(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")

    async def named() -> str:
        await asyncio.sleep(0)
        return marker.get()

    async def main() -> None:
        with installed(block_ms=20) as probe:
            await _request(probe.asgi(_app), "/", "first")  # the loop is watched from here
            loop = asyncio.get_running_loop()
            steps = len(probe.recorder.loop_steps())
            context = contextvars.copy_context()
            context.run(marker.set, "the given context")
            task = loop.create_task(named(), name="named-task", context=context)
            seen["name"], seen["result"] = task.get_name(), await task
            seen["steps"] = len(probe.recorder.loop_steps()) - steps

    uvloop.run(main())
    assert (seen["name"], seen["result"]) == ("named-task", "the given context")
    assert seen["steps"] >= 2  # the task's two steps, timed


def test_a_timer_set_in_a_requests_last_step_leaves_no_ready_stamp_behind() -> None:
    # uvicorn sets its keep-alive timer as a response ends, in the request's task: the timer's
    # due time is stamped for the request, and no later step of it takes the stamp.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        asyncio.get_running_loop().call_later(60, lambda: None).cancel()

    left: list[int] = []

    async def main() -> None:
        with installed(block_ms=20) as probe:
            wrapped = probe.asgi(app)
            loop = asyncio.get_running_loop()
            for i in range(50):
                await loop.create_task(_request(wrapped, "/", f"r{i}"))
            left.append(len(probe.step_clock.task_ready))
            assert [r.id for r in probe.collect().requests][-1] == "r49"

    uvloop.run(main())
    assert left == [0]


def test_a_wake_up_from_another_requests_step_counts_as_ready_from_the_wake() -> None:
    # A stamp made while a task step runs is held back until the step ends (most are the timer
    # a finishing request sets, dropped unused); one that wakes another request must still date
    # from the wake: here the waiter is ready while the waking step blocks on after it.
    event = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await event.wait()
        elif scope["path"] == "/set":
            event.set()
            time.sleep(0.06)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    requests: dict[str, ServerRequest] = {}
    left: list[int] = []

    async def main() -> None:
        with installed(block_ms=20) as probe:
            wrapped = probe.asgi(app)
            await _request(wrapped, "/", "first")
            loop = asyncio.get_running_loop()
            waiter = loop.create_task(_request(wrapped, "/wait", "waiter"))
            await asyncio.sleep(0.01)
            await loop.create_task(_request(wrapped, "/set", "setter"))
            await waiter
            left.append(len(probe.step_clock.task_ready))
            requests.update({r.id: r for r in probe.collect().requests})

    uvloop.run(main())
    waiter = requests["waiter"]
    assert _time_in(waiter, "ready") >= 50_000_000, waiter.segments
    assert _time_in(waiter, "awaiting") < 50_000_000, waiter.segments
    assert left == [0]


def test_the_watched_loops_call_soon_is_bound_once_and_other_loops_are_not_stamped() -> None:
    # asyncio's futures and tasks get `loop.call_soon` for every call they make: for the loop
    # watched the hook is bound once; another uvloop loop gets its own binding, and its calls
    # leave no stamp.
    seen: dict[str, Any] = {}

    async def main() -> None:
        with installed(block_ms=20) as probe:
            await _request(probe.asgi(_app), "/", "first")
            loop = asyncio.get_running_loop()
            seen["same"] = loop.call_soon is loop.call_soon
            other = uvloop.new_event_loop()
            try:
                seen["other"] = other.call_soon is not loop.call_soon
                held = contextvars.copy_context()
                held.run(REQUEST_ID.set, "elsewhere")
                other.call_soon(lambda: None, context=held).cancel()
            finally:
                other.close()
            await asyncio.sleep(0)  # a step's stamps are put in the table as it ends
            seen["left"] = dict(probe.step_clock.task_ready)

    uvloop.run(main())
    assert seen == {"same": True, "other": True, "left": {}}
