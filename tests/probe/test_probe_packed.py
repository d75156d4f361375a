"""The packed logs (`loopscope.probe.packed`) and the recorder's request numbering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loopscope.probe import _speedups_python, installed
from loopscope.probe.backend import is_compiled, load_backend
from loopscope.probe.context import REQUEST_HEADER, REQUEST_ID
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.probe.packed import FINISHED, FinishedLog, StepLog, pack_text, unpack_texts
from loopscope.probe.recorder import Recorder
from loopscope.probe.routes import route_template


def test_texts_round_trip_and_what_is_no_string_comes_back_as_none() -> None:
    values = ["", "GET", "/caf\u00e9", None, 42, "/\udc80", "x" * 300]
    packed = b"".join(pack_text(v) for v in values)
    assert unpack_texts(packed, 0, len(values)) == [
        "",
        "GET",
        "/caf\u00e9",
        None,
        None,
        None,  # a lone surrogate is not UTF-8
        "x" * 300,
    ]


@pytest.mark.parametrize(
    ("status", "stored"), [(200, 200), (None, None), ("200", None), (True, None), (2**70, None)]
)
def test_a_finished_request_keeps_an_int64_status_only(status: Any, stored: Any) -> None:
    log = FinishedLog()
    log.append(7, ("r", "GET", "/", "/"), (1, 2, 3, 4), status)
    assert list(log) == [(7, ["r", "GET", "/", "/"], (1, 2, 3, 4), stored)]
    assert len(log) == 1 and len(log.numbers) == FINISHED.size


def test_the_step_log_gives_back_what_was_appended_in_order() -> None:
    log = StepLog()
    for i in range(3):
        log.append(10 * i, 10 * i + 5, 0, i - 1, 0)
    steps = iter(log)
    log.append(99, 100, 0, 0, 0)  # appending while a reader iterates does not disturb it
    assert list(steps) == [(0, 5, 0, -1, 0), (10, 15, 0, 0, 0), (20, 25, 0, 1, 0)]
    assert len(log) == 4


def test_steps_name_a_running_request_by_its_serial_and_any_other_id_by_a_late_number() -> None:
    recorder = Recorder(100, id_prefix="s1-")
    watcher = _speedups_python.RequestWatcher(
        recorder, REQUEST_ID, recorder, REQUEST_HEADER, route_template
    )

    def begin(path: str, client_id: bytes | None) -> Any:
        headers = [(REQUEST_HEADER, client_id)] if client_id else []
        scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
        return watcher.begin(scope, None)

    first, second = begin("/a", None), begin("/b", b"client")
    assert (first.request_id, second.request_id) == ("s1-1", "client")
    assert recorder.ref_of("client") == 2
    assert recorder.ref_of("elsewhere") == -1  # set by code outside any request we saw
    assert recorder.ref_of("elsewhere") == -1
    first.status = 200
    first.finish({})
    second.token = None  # its id stays set: it is still running
    assert recorder.ref_of("s1-1") == -2  # finished: a later step is a late one
    for ref in (1, 2, -1, -2, 0):
        recorder.steps.append(ref + 100, ref + 101, 0, ref, 0)
    assert [step[3] for step in recorder.loop_steps()] == [
        "s1-1",
        "client",
        "elsewhere",
        "s1-1",
        None,
    ]
    records = recorder.request_records()
    assert list(records) == ["s1-1", "client"]
    assert (records["s1-1"].status, records["client"].end_ns) == (200, None)


def test_the_c_and_python_middlewares_store_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Route:
        path = "/items/{n}"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    def run(pure: bool) -> tuple[bytes, list[tuple[int, ...]]]:
        monkeypatch.setenv(PURE_PYTHON_ENV, "1" if pure else "")
        with installed() as probe:
            assert probe.compiled is not pure
            wrapped = probe.asgi(app)
            for headers in ([], [(b"x-loopscope-request", b"caf\xc3\xa9 7")], []):
                scope = {
                    "type": "http",
                    "method": "PUT",
                    "path": "/items/\u00e9",
                    "headers": headers,
                }
                asyncio.run(wrapped(scope, receive, send))
            packed = FINISHED.iter_unpack(bytes(probe.recorder.finished.numbers))
            numbers = [(status, serial, at) for _, _, _, status, _, serial, at in packed]
            return bytes(probe.recorder.finished.texts), numbers

    assert run(pure=False) == run(pure=True)


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure-python"])
def test_a_routes_template_is_built_once_unless_a_mount_prefixed_it(
    pure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if pure else "")
    backend = load_backend()
    assert is_compiled(backend) is not pure
    built: list[Any] = []

    def route_of(scope: Any) -> str | None:
        built.append(scope.get("path"))
        return route_template(scope)

    class Route:
        def __init__(self, path: str) -> None:
            self.path = path

    class Unhashable(Route):  # as Starlette's routes: they compare by value
        __hash__ = None  # type: ignore[assignment]

    class Context:
        path_format = "/v1/items"

    recorder = Recorder(1000)
    watcher = backend.RequestWatcher(recorder, REQUEST_ID, recorder, REQUEST_HEADER, route_of)

    def finish(path: str, **scope: Any) -> str | None:
        watch = watcher.begin({"type": "http", "method": "GET", "path": path, "headers": []}, None)
        watch.finish({"path": path, **scope})
        return [row for _, row, _, _ in recorder.finished][-1][3]

    items, other = Route("/items"), Route("/other")
    assert [finish("/items", route=items) for _ in range(3)] == ["/items"] * 3
    assert finish("/other", route=other) == "/other"
    assert built == ["/items", "/other"]  # once per route
    assert finish("/nowhere") is None  # no route matched: nothing to build
    assert finish("/nowhere", route=None) is None
    context = Context()
    for _ in range(2):  # FastAPI's included routes: by their effective context
        assert finish("/v1", route=items, fastapi={"effective_route_context": context}) == (
            "/v1/items"
        )
    mounted = {"root_path": "/sub", "app_root_path": ""}
    for _ in range(2):  # a mount's prefix is in the scope, not the route: built each time
        assert finish("/sub/items", route=items, **mounted) == "/sub/items"
    odd = Unhashable("/odd")
    assert [finish("/odd", route=odd) for _ in range(2)] == ["/odd"] * 2
    assert built == ["/items", "/other", "/v1", "/sub/items", "/sub/items", "/odd"]
