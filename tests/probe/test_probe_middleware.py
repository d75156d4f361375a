"""The middleware's call (`WatchedApp`, C and Python twin) behaves as the app's own coroutine:
ASGI 3 to every server, awaited, thrown into, cancelled, closed or dropped, each request is
finished once and the app's outcome passes through unchanged."""

from __future__ import annotations

import asyncio
import gc
import inspect
import types
from collections.abc import Generator, MutableMapping
from typing import Any

import pytest
import uvicorn
from starlette._utils import is_async_callable

from loopscope.probe import REQUEST_ID, installed
from loopscope.probe.loop import PURE_PYTHON_ENV

Message = MutableMapping[str, Any]


@pytest.fixture(autouse=True, params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the probe's C hooks and again with its pure-Python ones."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _scope(request_id: str) -> dict[str, Any]:
    headers = [(b"x-loopscope-request", request_id.encode())]
    return {"type": "http", "method": "GET", "path": "/", "headers": headers}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_servers_and_test_clients_take_it_for_an_asgi3_app(implementation: str) -> None:
    with installed() as probe:
        wrapped = probe.asgi(_app)
        assert (type(wrapped).__module__ == "loopscope.probe._speedups") == (
            implementation == "compiled"
        )
        assert asyncio.iscoroutinefunction(wrapped.__call__)
        assert is_async_callable(wrapped)  # Starlette's TestClient and middleware
        config = uvicorn.Config(wrapped, lifespan="off")
        config.load()
        assert config.interface == "asgi3"


def test_an_app_that_returns_another_awaitable_is_awaited_and_its_value_passes() -> None:
    class Answer:
        """An awaitable that is no coroutine: it waits one loop turn, then returns."""

        def __await__(self) -> Generator[Any, None, str]:
            yield from asyncio.sleep(0).__await__()
            return "the app's value"

    def app(scope: Any, receive: Any, send: Any) -> Answer:
        return Answer()

    async def main(wrapped: Any) -> Any:
        return await wrapped(_scope("other"), _receive, _send)

    with installed() as probe:
        assert asyncio.run(main(probe.asgi(app))) == "the app's value"
        record = probe.collect()
    assert record.request("other").server_end_ns is not None
    assert probe.recorder.live == {}


def test_an_app_that_returns_no_awaitable_fails_as_await_would_and_is_finished() -> None:
    def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def main(wrapped: Any) -> None:
        await wrapped(_scope("none"), _receive, _send)

    with installed() as probe:
        with pytest.raises(TypeError, match="can't be used in 'await' expression"):
            asyncio.run(main(probe.asgi(app)))
        record = probe.collect()
    assert record.request("none").server_end_ns is not None
    assert probe.recorder.live == {}
    assert probe.recorder.errors == 0


def test_a_cancelled_request_is_finished_and_the_cancellation_passes() -> None:
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await asyncio.sleep(60)

    async def main(wrapped: Any) -> None:
        task = asyncio.create_task(wrapped(_scope("cancelled"), _receive, _send))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with installed() as probe:
        asyncio.run(main(probe.asgi(app)))
        record = probe.collect()
    request = record.request("cancelled")
    assert request.status == 200
    assert request.server_end_ns is not None
    assert probe.recorder.live == {}


def test_a_call_thrown_into_before_it_starts_raises_and_records_nothing() -> None:
    async def main(wrapped: Any) -> None:
        call = wrapped(_scope("never"), _receive, _send).__await__()
        with pytest.raises(LookupError, match="before the first step"):
            call.throw(LookupError("before the first step"))
        call.close()

    with installed() as probe:
        asyncio.run(main(probe.asgi(_app)))
        record = probe.collect()
    assert record.requests == []
    assert probe.recorder.live == {}


def test_a_call_dropped_while_it_waits_is_closed_and_its_request_finished() -> None:
    closed: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await asyncio.get_running_loop().create_future()  # never resolved
        finally:
            closed.append("app")

    async def main(wrapped: Any) -> None:
        call = wrapped(_scope("dropped"), _receive, _send).__await__()
        call.send(None)  # the first step: the request begins, the app waits on its future
        assert "dropped" in probe.recorder.live
        del call
        gc.collect()

    with installed() as probe:
        asyncio.run(main(probe.asgi(app)))
        record = probe.collect()
    assert closed == ["app"]
    assert record.request("dropped").status == 200
    assert probe.recorder.live == {}


def test_a_finished_call_cannot_be_awaited_again() -> None:
    async def main(wrapped: Any) -> None:
        call = wrapped(_scope("once"), _receive, _send)
        await call
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await call

    with installed() as probe:
        asyncio.run(main(probe.asgi(_app)))
        assert [r.id for r in probe.collect().requests] == ["once"]


def test_inspect_too_takes_it_for_a_coroutine_function() -> None:
    # hypercorn asks `inspect.iscoroutinefunction(app.__call__)`, which on 3.11 wants an
    # `async def`; calling `__call__` by name serves the request as calling the app does.
    with installed() as probe:
        wrapped = probe.asgi(_app)
        assert inspect.iscoroutinefunction(wrapped.__call__)
        asyncio.run(wrapped.__call__(_scope("by-name"), _receive, _send))
        assert [r.id for r in probe.collect().requests] == ["by-name"]


def test_an_app_that_sends_to_its_own_running_call_gets_an_error_not_a_crash() -> None:
    calls: list[Any] = []
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> str:
        for action in ("send", "close"):
            try:
                getattr(calls[0], action)(*([None] if action == "send" else []))
            except ValueError as exc:
                seen.append(str(exc))
        await _app(scope, receive, send)
        return "after"

    async def main(wrapped: Any) -> Any:
        calls.append(wrapped(_scope("reentrant"), _receive, _send).__await__())
        return await asyncio.ensure_future(_drive(calls[0]))

    async def _drive(call: Any) -> Any:
        return await _Awaiting(call)

    with installed() as probe:
        assert asyncio.run(main(probe.asgi(app))) == "after"
        assert probe.collect().request("reentrant").status == 200
    assert seen == ["coroutine already executing"] * 2


class _Awaiting:
    """Awaits a call's iterator as `await` would."""

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator

    def __await__(self) -> Any:
        return (yield from self.iterator)


def test_an_interrupt_in_the_probes_own_task_map_is_raised_and_the_request_finished() -> None:
    async def main(wrapped: Any) -> None:
        wrapped.host.check_loop = lambda: True  # heartbeat mode's task map, as under uvloop

        def interrupted(request_id: str) -> None:
            raise KeyboardInterrupt

        wrapped.host.track = interrupted
        await wrapped(_scope("interrupted"), _receive, _send)

    with installed() as probe:
        wrapped = probe.asgi(_app)
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main(wrapped))
        assert probe.recorder.live == {}
        assert REQUEST_ID.get() is None


def test_a_generator_based_coroutine_app_is_awaited() -> None:
    @types.coroutine
    def app(scope: Any, receive: Any, send: Any) -> Generator[Any, None, str]:
        yield from asyncio.sleep(0).__await__()
        return "generator's value"

    async def main(wrapped: Any) -> Any:
        return await wrapped(_scope("gen"), _receive, _send)

    with installed() as probe:
        assert asyncio.run(main(probe.asgi(app))) == "generator's value"


def test_a_first_value_that_is_not_none_is_refused_and_the_call_can_still_start() -> None:
    async def main(wrapped: Any) -> None:
        call = wrapped(_scope("late-start"), _receive, _send)
        with pytest.raises(TypeError, match="non-None value"):
            call.__await__().send(1)
        assert probe.recorder.live == {}
        await call

    with installed() as probe:
        asyncio.run(main(probe.asgi(_app)))
        assert [r.id for r in probe.collect().requests] == ["late-start"]


def test_cancelling_an_app_whose_awaitable_has_no_throw_cancels_it() -> None:
    class Waiting:
        """An awaitable whose iterator has no `throw` and no `close`."""

        def __await__(self) -> Any:
            return self

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return None  # a bare yield: the task steps again on the next turn

    def app(scope: Any, receive: Any, send: Any) -> Waiting:
        return Waiting()

    async def main(wrapped: Any) -> None:
        task = asyncio.ensure_future(wrapped(_scope("no-throw"), _receive, _send))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with installed() as probe:
        asyncio.run(main(probe.asgi(app)))
        assert probe.collect().request("no-throw").server_end_ns is not None
