"""Ready stamps: when a request's handle became runnable, on a real asyncio loop, both hooks."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from loopscope.probe import REQUEST_ID
from loopscope.probe.loop import PURE_PYTHON_ENV, LoopHooks
from loopscope.probe.recorder import Recorder


@pytest.fixture(params=["compiled", "pure-python"])
def hooks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    loop_hooks = LoopHooks(Recorder(100_000), long_step_ns=10**9)
    assert loop_hooks.compiled is (request.param == "compiled")
    loop_hooks.install()
    yield loop_hooks
    loop_hooks.uninstall()


def test_every_handle_run_carries_its_ready_stamp_and_cancelled_ones_are_let_go(
    hooks: LoopHooks,
) -> None:
    ran: list[int] = []
    cancelled: list[weakref.ref[asyncio.Handle]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        hooks.loop = loop
        REQUEST_ID.set("r")
        # Enough at once to grow the C table several times; every third is cancelled, so it
        # stays stamped (the loop drops it unrun) and the table must delete around the others.
        for i in range(700):
            handle = loop.call_soon(ran.append, i)
            if i % 3 == 0:
                handle.cancel()
                cancelled.append(weakref.ref(handle))
            del handle
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert len(ran) == 700 - len(cancelled)
    steps = [s for s in hooks._recorder.loop_steps() if s[3] == "r"]
    # Each handle run was stamped when scheduled: ready before its step started.
    stamped = [s for s in steps if 0 < s[4] <= s[0]]
    assert len(stamped) >= len(ran)
    hooks.uninstall()
    hooks._recorder.stamps.clear()  # the pure-Python hooks' stamps outlive their uninstall
    gc.collect()
    assert all(ref() is None for ref in cancelled)
