"""Installing, uninstalling, and the promise never to break the host app (in-process)."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from asyncio import base_events, events
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from loopscope import probe as probe_module
from loopscope.errors import UsageError
from loopscope.probe import REQUEST_ID, install, installed, sanitize_request_id
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.trace.io import load_record
from loopscope.trace.record import ServerRecord

Message = MutableMapping[str, Any]


@pytest.fixture(autouse=True, params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the probe's C hooks and again with its pure-Python ones."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _patched_objects() -> list[object]:
    return [
        events.Handle.__dict__["_run"],
        base_events.BaseEventLoop.__dict__["_call_soon"],
        anyio.to_thread.__dict__["run_sync"],
    ]


async def _call(app: Any, scope: dict[str, Any]) -> list[Message]:
    """Call an ASGI app once with an empty body; return what it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _http_scope(path: str = "/", request_id: bytes | None = None) -> dict[str, Any]:
    headers = [(b"host", b"test")]
    if request_id is not None:
        headers.append((b"x-loopscope-request", request_id))
    return {"type": "http", "method": "GET", "path": path, "headers": headers}


async def _ok(send: Callable[[Message], Any], body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_uninstall_restores_every_patched_attribute_exactly() -> None:
    before = _patched_objects()
    callbacks = list(gc.callbacks)
    probe = install()
    assert all(now is not then for now, then in zip(_patched_objects(), before, strict=True))
    assert len(gc.callbacks) == len(callbacks) + 1
    probe.uninstall()
    assert all(now is then for now, then in zip(_patched_objects(), before, strict=True))
    assert gc.callbacks == callbacks
    probe.uninstall()  # a second uninstall is harmless


def test_installing_twice_raises_a_clear_error() -> None:
    with installed(), pytest.raises(UsageError, match=r"already installed.*uninstall"):
        install()


def test_install_is_a_context_manager_too() -> None:
    with install(block_ms=5) as probe:
        assert probe.installed
    assert not probe.installed
    assert probe_module.active_probe() is None


@pytest.mark.parametrize("settings", [{"block_ms": 0}, {"max_events": -1}])
def test_settings_out_of_range_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        install(**settings)


def test_request_ids_are_sanitized_to_64_safe_characters() -> None:
    assert sanitize_request_id("user-7.run_3") == "user-7.run_3"
    assert sanitize_request_id("a b/c<d>") == "abcd"
    assert sanitize_request_id("x" * 100) == "x" * 64
    assert sanitize_request_id("!!!") is None


def test_request_id_reaches_loop_handles_and_worker_threads() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["loop"] = REQUEST_ID.get()
        seen["thread"] = await anyio.to_thread.run_sync(REQUEST_ID.get)
        await _ok(send)

    with installed() as probe:
        asyncio.run(_call(probe.asgi(app), _http_scope(request_id=b"bad id/7")))
        record = probe.collect()
    assert seen == {"loop": "badid7", "thread": "badid7"}
    request = record.request("badid7")
    assert request.pool_hops == 1
    assert [c.request_id for c in record.pool] == ["badid7"]
    assert REQUEST_ID.get() is None


def test_a_repeated_client_id_does_not_overwrite_the_earlier_request() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _ok(send)

    async def twice(wrapped: Any) -> None:
        for _ in range(2):
            await _call(wrapped, _http_scope(request_id=b"same"))

    with installed() as probe:
        asyncio.run(twice(probe.asgi(app)))
        assert sorted(probe.collect().request_ids) == ["same", "same.2"]


def test_client_ids_and_generated_ids_never_collide() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _ok(send)

    with installed() as probe:
        prefix = probe.recorder.id_prefix

        async def scenario(wrapped: Any) -> None:
            await _call(wrapped, _http_scope())  # generated: <prefix>1
            await _call(wrapped, _http_scope(request_id=f"{prefix}1".encode()))  # taken
            await _call(wrapped, _http_scope(request_id=f"{prefix}4".encode()))  # not yet
            await _call(wrapped, _http_scope())  # <prefix>4 is the client's now

        asyncio.run(scenario(probe.asgi(app)))
        ids = probe.collect().request_ids
    assert ids == [f"{prefix}1", f"{prefix}1.2", f"{prefix}4", f"{prefix}4.2"]


def test_odd_scope_values_are_stored_as_best_they_can_be() -> None:
    class Route:
        path = 42  # not a template

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": "200", "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "method": None, "path": "/caf\u00e9/\udc80", "headers": []}
    with installed() as probe:
        asyncio.run(_call(probe.asgi(app), scope))
        (request,) = probe.collect().requests
    # No method, a path with a lone surrogate (not UTF-8), a route that is no template and a
    # status that is no int: each is stored as missing, and the request is still there.
    assert (request.method, request.path, request.status) == ("", "", None)
    assert request.route == ""
    assert probe.recorder.errors == 0


def test_an_exception_in_the_probes_own_bookkeeping_is_counted_and_the_request_succeeds() -> None:
    class BrokenRoute:
        @property
        def path(self) -> str:
            raise RuntimeError("a route object of a shape the probe does not expect")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = BrokenRoute()
        await _ok(send, b"still fine")

    with installed() as probe:
        sent = asyncio.run(_call(probe.asgi(app), _http_scope("/broken", b"r1")))
        record = probe.collect()
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"still fine"
    assert record.counts.probe_errors == 1
    assert record.request("r1").route == "/broken"
    assert record.request("r1").status == 200


def test_exceptions_of_the_app_propagate_unchanged() -> None:
    failure = ValueError("the app's own bug")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise failure

    with installed() as probe:
        with pytest.raises(ValueError) as caught:
            asyncio.run(_call(probe.asgi(app), _http_scope(request_id=b"boom")))
        record = probe.collect()
    assert caught.value is failure
    assert record.request("boom").status is None
    assert record.request("boom").server_end_ns is not None


def test_lifespan_and_websocket_scopes_pass_through_untouched() -> None:
    scopes: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        assert REQUEST_ID.get() is None

    async def main(wrapped: Any) -> None:
        for kind in ("lifespan", "websocket"):
            await wrapped({"type": kind}, None, None)

    with installed() as probe:
        asyncio.run(main(probe.asgi(app)))
        record = probe.collect()
    assert scopes == [{"type": "lifespan"}, {"type": "websocket"}]
    assert record.requests == []


def test_the_thread_pool_wrapper_keeps_anyios_behaviour() -> None:
    failure = KeyError("from the worker")

    def explode() -> None:
        raise failure

    async def main() -> None:
        assert await anyio.to_thread.run_sync(divmod, 7, 3) == (2, 1)
        limiter = anyio.CapacityLimiter(1)
        assert await anyio.to_thread.run_sync(abs, -4, limiter=limiter, abandon_on_cancel=True)
        with pytest.raises(KeyError) as caught:
            await anyio.to_thread.run_sync(explode)
        assert caught.value is failure
        with pytest.warns(DeprecationWarning, match="cancellable") as warned:
            await anyio.to_thread.run_sync(abs, -1, cancellable=True)
        assert warned[0].filename == __file__

    with installed() as probe:
        asyncio.run(main())
        record = probe.collect()
    assert [call.func for call in record.pool] == [
        "builtins.divmod",
        "builtins.abs",
        f"{__name__}.test_the_thread_pool_wrapper_keeps_anyios_behaviour.<locals>.explode",
        "builtins.abs",
    ]
    # Samples follow the default limiter only: three calls, three samples each.
    assert len(record.pool_samples) == 9
    assert all(call.finished_ns >= call.started_ns for call in record.pool)


def test_dump_writes_the_collected_record_as_json(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.001)
        await _ok(send)

    with installed(block_ms=50) as probe:
        asyncio.run(_call(probe.asgi(app), _http_scope("/x")))
        path = probe.dump(tmp_path / "server.json")
    data = json.loads(path.read_text())
    assert set(data) == {
        "version",
        "pid",
        "loop",
        "precise",
        "block_ms",
        "requests",
        "loop_blocks",
        "pool",
        "pool_samples",
        "lanes",
        "counts",
        "failures",
        "checkpoint_ns",
    }
    record = load_record(path)
    assert record.checkpoint_ns is None, "a final record"
    assert (record.loop, record.precise, record.block_ms) == ("asyncio", True, 50)
    assert record.counts.loops == 1
    (request,) = record.requests
    assert re.fullmatch(r"s\d+-1", request.id)
    assert request.loop_steps is not None and request.loop_steps >= 2


def test_a_tiny_event_budget_drops_events_and_the_app_still_answers(
    tmp_path: Path, run_probed: Callable[..., ServerRecord]
) -> None:
    async def scenario(client: Any) -> None:
        for i in range(8):
            answer = await client.get("/async-sleep", headers={"x-loopscope-request": f"r{i}"})
            assert answer.status_code == 200

    record = run_probed(tmp_path, scenario, max_events=20)
    assert record.counts.dropped_events > 0
    assert record.counts.probe_errors == 0
    stored = record.counts.steps + len(record.requests) + len(record.pool)
    assert stored <= 20


def test_the_compiled_hooks_are_built_and_used_unless_pure_python_is_asked(
    implementation: str,
) -> None:
    # `pip install -e .` compiles them; a broken build must fail here, not slow the probe quietly.
    from loopscope.probe import _speedups
    from loopscope.probe.packed import NO_TEXT

    assert _speedups.NO_TEXT == NO_TEXT
    with installed() as probe:
        app = probe.asgi(lambda scope, receive, send: None)
        assert probe.compiled is (implementation == "compiled")
        expected = "_speedups" if implementation == "compiled" else "_speedups_python"
        assert type(app).__module__ == f"loopscope.probe.{expected}"
        assert type(app.host._watcher).__module__ == f"loopscope.probe.{expected}"


def _blocking_app(block_s: float) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        time.sleep(block_s)  # holds the loop: the block every test below must catch
        await _ok(send)

    return app


def test_every_loop_is_observed_when_the_process_runs_several_in_a_row() -> None:
    with installed(block_ms=20) as probe:
        app = probe.asgi(_blocking_app(0.06))
        for n in range(3):
            # A fresh loop each time, as `asyncio.run` or pytest's loop per test gives; no
            # lifespan call first, as under httpx's ASGITransport.
            asyncio.run(_call(app, _http_scope(f"/run{n}", f"r{n}".encode())))
        record = probe.collect()
    assert record.counts.loops == 3
    assert record.precise is True
    blamed = sorted(b.request_id or "" for b in record.loop_blocks)
    assert blamed == ["r0", "r1", "r2"]
    assert all(b.duration_ns >= 50_000_000 for b in record.loop_blocks)
    assert all(r.loop_steps for r in record.requests)


def test_a_block_in_the_very_first_request_is_caught_without_a_lifespan_call() -> None:
    with installed(block_ms=20) as probe:
        asyncio.run(_call(probe.asgi(_blocking_app(0.06)), _http_scope("/first", b"first")))
        record = probe.collect()
    (block,) = record.loop_blocks
    assert block.request_id == "first"
    assert block.where is not None and block.where.endswith(f"{Path(__file__).name}:{_SLEEP_LINE}")


_SLEEP_LINE = _blocking_app.__code__.co_firstlineno + 2


def test_a_failure_in_the_probe_is_kept_with_its_hook_and_cause() -> None:
    class BrokenRoute:
        @property
        def path(self) -> str:
            raise RuntimeError("route of an unexpected shape")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = BrokenRoute()
        await _ok(send)

    with installed() as probe:
        wrapped = probe.asgi(app)
        for n in range(3):
            asyncio.run(_call(wrapped, _http_scope("/broken", f"b{n}".encode())))
        record = probe.collect()
    assert record.counts.probe_errors == 3
    (failure,) = record.failures
    assert failure.hook == "middleware"
    assert failure.error == "RuntimeError('route of an unexpected shape')"
    assert failure.count == 3


def test_the_python_twin_has_the_c_extensions_api_one_for_one() -> None:
    from loopscope.probe import _speedups, _speedups_python

    def public(owner: object) -> set[str]:
        return {name for name in dir(owner) if not name.startswith("_")}

    exported = {name for name in public(_speedups) if not name.startswith("_")}
    assert exported <= public(_speedups_python)
    # RequestWatch is made by RequestWatcher.begin only; the C module does not export it.
    for name in (
        "StepHook",
        "SoonHook",
        "RequestWatcher",
        "StallGate",
        "TimedCoroutine",
        "TaskSoonHook",
        "TaskFactory",
        "WatchedApp",
    ):
        c_type, twin = getattr(_speedups, name), getattr(_speedups_python, name)
        attributes = set(getattr(twin, "__annotations__", {}))
        assert public(c_type) <= public(twin) | attributes, name
    for name in ("BUDGET_CHUNK", "NO_TEXT", "TICKS_KEPT"):
        assert getattr(_speedups, name) == getattr(_speedups_python, name), name
