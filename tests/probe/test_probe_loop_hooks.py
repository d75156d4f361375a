"""The loop hooks on a real asyncio loop, C and pure Python: ready stamps, callbacks' errors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import sys
import threading
import weakref
from asyncio import base_events
from typing import Any

import pytest

from loopscope.probe import REQUEST_ID
from loopscope.probe.backend import load_backend
from loopscope.probe.loop import PURE_PYTHON_ENV, LoopHooks
from loopscope.probe.recorder import Recorder


@pytest.fixture(params=["compiled", "pure-python"])
def hooks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    loop_hooks = LoopHooks(Recorder(100_000), long_step_ns=10**9, backend=load_backend())
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
    hooks.uninstall()  # lets go of the stamps of handles that never ran
    gc.collect()
    assert all(ref() is None for ref in cancelled)


def _failing_callback_report(hooks: LoopHooks | None) -> tuple[list[Any], Any]:
    """Run a callback that raises on a fresh loop; what the loop's exception handler saw."""
    reports: list[Any] = []

    def boom(value: int) -> None:
        raise ValueError(value)

    async def scenario() -> Any:
        loop = asyncio.get_running_loop()
        if hooks is not None:
            hooks.loop = loop
        loop.set_exception_handler(
            lambda _, context: reports.append((dict(context), sys.exc_info()[1]))
        )
        handle = loop.call_soon(boom, 7)
        await asyncio.sleep(0.01)
        return handle

    return reports, asyncio.run(scenario())


def test_a_failing_callback_is_reported_exactly_as_asyncio_reports_it(hooks: LoopHooks) -> None:
    hooks.uninstall()
    [(expected, _)], _ = _failing_callback_report(None)
    hooks.install()
    [(context, handled)], handle = _failing_callback_report(hooks)

    assert context["message"] == expected["message"]
    assert context["message"].startswith("Exception in callback ")
    assert context["handle"] is handle
    exc = context["exception"]
    assert type(exc) is ValueError and exc.args == (7,)
    assert handled is exc  # the handler runs while the exception is being handled
    assert isinstance(handle._context, type(expected["handle"]._context))  # put back
    # The step was timed all the same.
    assert any(step[0] <= step[1] for step in hooks._recorder.loop_steps())


@pytest.mark.parametrize("fatal", [SystemExit, KeyboardInterrupt])
def test_system_exit_and_keyboard_interrupt_in_a_callback_still_stop_the_loop(
    hooks: LoopHooks, fatal: type[BaseException]
) -> None:
    def stop() -> None:
        raise fatal("stop")

    async def scenario() -> None:
        hooks.loop = asyncio.get_running_loop()
        asyncio.get_running_loop().call_soon(stop)
        await asyncio.sleep(1)

    with pytest.raises(fatal):
        asyncio.run(scenario())


def test_the_c_hook_runs_callbacks_without_the_python_frame_of_handle_run(
    hooks: LoopHooks,
) -> None:
    callers: list[str] = []

    async def scenario() -> None:
        hooks.loop = asyncio.get_running_loop()
        asyncio.get_running_loop().call_soon(
            lambda: callers.append(sys._getframe(1).f_code.co_name)
        )
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert callers == ["_run_once" if hooks.compiled else "_run"]


def _debug_source(hooks: LoopHooks | None) -> list[str]:
    """The functions of a debug-mode handle's source traceback, innermost last."""

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        if hooks is not None:
            hooks.loop = loop
        handle = loop.call_soon(lambda: None)
        return [frame.name for frame in handle._source_traceback]

    return asyncio.run(scenario(), debug=True)


def test_a_debug_mode_handle_remembers_where_it_was_scheduled_as_without_the_probe(
    hooks: LoopHooks,
) -> None:
    hooks.uninstall()
    expected = _debug_source(None)
    hooks.install()
    assert expected[-1] == "scenario"  # asyncio drops its own frames
    # The hooks add or remove `_run` frames (the C one runs callbacks without asyncio's, the
    # Python one adds its own), and the traceback keeps a fixed number of frames: the frames
    # where the handle was scheduled are the same.
    probes = ("_run", "_foreign_run")
    asyncio_frames = [name for name in expected if name not in probes][-4:]
    assert [name for name in _debug_source(hooks) if name not in probes][-4:] == asyncio_frames


def test_a_callback_that_cancels_its_own_handle_then_fails_is_reported_with_its_error(
    hooks: LoopHooks,
) -> None:
    reports: list[Any] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        hooks.loop = loop
        loop.set_exception_handler(lambda _, context: reports.append(context["exception"]))
        handles: list[asyncio.Handle] = []

        def cancel_then_fail() -> None:
            handles[0].cancel()
            raise ValueError("boom")

        handles.append(loop.call_soon(cancel_then_fail))
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [(type(e), e.args) for e in reports] == [(ValueError, ("boom",))]


def test_a_wrapper_put_on_the_loop_before_the_probe_is_still_called(
    monkeypatch: pytest.MonkeyPatch, hooks: LoopHooks
) -> None:
    hooks.uninstall()
    calls = {"_run": 0, "_call_soon": 0}
    run, call_soon = asyncio.Handle._run, base_events.BaseEventLoop._call_soon

    @functools.wraps(run)
    def counted_run(handle: Any) -> None:
        calls["_run"] += 1
        run(handle)

    @functools.wraps(call_soon)
    def counted_call_soon(*args: Any) -> Any:
        calls["_call_soon"] += 1
        return call_soon(*args)

    monkeypatch.setattr(asyncio.Handle, "_run", counted_run)
    monkeypatch.setattr(base_events.BaseEventLoop, "_call_soon", counted_call_soon)
    hooks.install()

    async def scenario() -> None:
        hooks.loop = asyncio.get_running_loop()
        for _ in range(5):
            asyncio.get_running_loop().call_soon(lambda: None)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert calls["_run"] >= 5 and calls["_call_soon"] >= 5
    assert len(hooks._recorder.steps) >= 5


def test_an_interrupt_raised_inside_the_probes_bookkeeping_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, hooks: LoopHooks
) -> None:
    recorder = hooks._recorder

    take = Recorder.take
    raised: list[bool] = []

    def interrupted(self: Recorder, wanted: int) -> int:  # as if Ctrl-C's handler ran here
        if not raised:
            raised.append(True)
            raise KeyboardInterrupt
        return take(self, wanted)

    monkeypatch.setattr(Recorder, "take", interrupted)

    async def scenario() -> None:
        hooks.loop = asyncio.get_running_loop()
        await asyncio.sleep(0)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(scenario())
    assert recorder.errors == 0


def test_a_stamped_handle_is_let_go_when_its_request_ended_before_it_ran(
    hooks: LoopHooks,
) -> None:
    released: list[weakref.ref[asyncio.Handle]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        hooks.loop = loop
        context = contextvars.copy_context()
        token = context.run(REQUEST_ID.set, "r")
        handle = loop.call_soon(lambda: None, context=context)
        context.run(REQUEST_ID.reset, token)  # the request is over before its handle runs
        released.append(weakref.ref(handle))
        del handle
        await asyncio.sleep(0.01)
        gc.collect()
        assert released[0]() is None

    asyncio.run(scenario())


def test_running_here_is_true_only_inside_a_watched_step_on_its_own_thread(
    hooks: LoopHooks,
) -> None:
    steps = hooks.clock
    seen: dict[str, bool] = {}

    async def scenario() -> None:
        seen["before watching"] = steps.running_here()
        hooks.loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # the next step is a watched one
        seen["in a watched step"] = steps.running_here()
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(steps.running_here()))
        thread.start()
        thread.join()  # the loop's step is still running meanwhile, on another thread
        seen["on another thread"] = other[0]

    asyncio.run(scenario())
    seen["between steps"] = steps.running_here()
    assert seen == {
        "before watching": False,
        "in a watched step": True,
        "on another thread": False,
        "between steps": False,
    }
