"""The precise-mode watchdog's wait (`StallGate`, C and its Python twin), on a real asyncio loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

from loopscope.probe import _speedups_python, watchdog
from loopscope.probe.frames import FrameNamer
from loopscope.probe.loop import LoopHooks
from loopscope.probe.recorder import Recorder

MS = 1_000_000


@pytest.fixture(params=["compiled", "pure-python"])
def speedups(request: pytest.FixtureRequest) -> Any:
    if request.param == "pure-python":
        return _speedups_python
    from loopscope.probe import _speedups  # `pip install -e .` builds it; a test fails if not

    return _speedups


@pytest.fixture
def hooks(speedups: Any) -> Any:
    recorder = Recorder(10_000)
    loop_hooks = LoopHooks(recorder, long_step_ns=10 * MS, backend=speedups)
    loop_hooks.install()
    yield loop_hooks
    loop_hooks.uninstall()


def _wait_in_thread(gate: Any) -> tuple[threading.Thread, list[int | None]]:
    opened: list[int | None] = []
    thread = threading.Thread(target=lambda: opened.append(gate.wait()), daemon=True)
    thread.start()
    return thread, opened


def test_the_gate_stays_shut_while_steps_are_short_and_opens_during_a_long_one(
    speedups: Any, hooks: LoopHooks
) -> None:
    async def scenario() -> tuple[list[int | None], list[tuple[int, int]], Any]:
        loop = asyncio.get_running_loop()
        hooks.loop = loop
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        gate = speedups.StallGate(hooks.clock, 2 * MS, 10 * MS, clock_id)
        thread, opened = _wait_in_thread(gate)
        for _ in range(20):  # 40 ms of short steps: many ticks, none of them long
            await asyncio.sleep(0.002)
        assert opened == []
        loop.call_soon(time.sleep, 0.06)  # one step of 60 ms, which holds the loop
        await asyncio.sleep(0.01)
        thread.join(timeout=5)
        gate.stop()
        return opened, gate.ticks(), loop

    opened, ticks, _ = asyncio.run(scenario())
    long_step = max(hooks._recorder.steps, key=lambda step: step[1] - step[0])
    start, end = long_step[0], long_step[1]
    assert end - start >= 60 * MS
    (now,) = opened
    assert now is not None and start + 10 * MS < now < end
    # The ticks: the last `TICKS_KEPT`, in order, with the loop thread's CPU clock running on.
    assert 10 <= len(ticks) <= speedups.TICKS_KEPT
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in itertools.pairwise(ticks))


def test_stopping_the_gate_ends_a_wait_at_once(speedups: Any, hooks: LoopHooks) -> None:
    gate = speedups.StallGate(hooks.clock, 60_000 * MS, 10 * MS, None)
    thread, opened = _wait_in_thread(gate)
    time.sleep(0.05)
    gate.stop()
    thread.join(timeout=2)
    assert opened == [None]
    assert gate.wait() is None  # stopped for good
    assert gate.ticks() == []  # no CPU clock given: no ticks kept


def test_the_gate_refuses_what_is_not_a_step_hook_or_a_sane_interval(
    speedups: Any, hooks: LoopHooks
) -> None:
    with pytest.raises(TypeError):
        speedups.StallGate(Recorder(10), MS, MS, None)
    with pytest.raises(ValueError, match="interval_ns"):
        speedups.StallGate(hooks.clock, 0, MS, None)


def test_the_watchdog_uses_the_gate_in_precise_mode(speedups: Any, hooks: LoopHooks) -> None:
    assert speedups.TICKS_KEPT == watchdog._TICKS_KEPT

    async def make(heartbeat: bool, clock: Any) -> watchdog.Watchdog:
        return watchdog.Watchdog(
            hooks._recorder,
            FrameNamer(None),
            loop=asyncio.get_running_loop(),
            block_ns=20 * MS,
            heartbeat=heartbeat,
            current_request=lambda: None,
            step_clock=clock,
            backend=speedups,
        )

    assert asyncio.run(make(False, hooks.clock)).gated
    assert not asyncio.run(make(True, hooks.clock)).gated
