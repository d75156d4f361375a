"""Failure causes: uvicorn's logged tracebacks parsed, and paired with the requests that failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loopscope.load import Hit, run_load, uniform_scenario
from loopscope.measure.failures import (
    Failure,
    ServerException,
    is_not_a_factory,
    parse_exceptions,
    summarize_failures,
)
from loopscope.server import ServerProcess, ServerSettings
from loopscope.trace.model import Request

APPS = Path(__file__).parents[1] / "apps"


def _request(
    rid: str, route: str, status: int | None, done: int, error: str | None = None
) -> Request:
    return Request(rid, "GET", route, route, status, 0, done, error=error)


def test_a_real_uvicorn_log_gives_the_exception_and_the_apps_line() -> None:
    server = ServerProcess(ServerSettings(app="failing:app", app_dir=str(APPS)))
    with server:
        scenario = uniform_scenario([Hit("GET", "/boom"), Hit("GET", "/ok")], 2)
        asyncio.run(run_load(server.url, scenario))
    log = server.log_text()
    server.close()
    assert (
        parse_exceptions(log, str(APPS))
        == [ServerException("RuntimeError", "card declined for 42", "failing.py:17")] * 2
    )


def test_without_an_app_root_the_innermost_frame_outside_libraries_is_named() -> None:
    log = "\n".join(
        [
            "ERROR:    Exception in ASGI application",
            "Traceback (most recent call last):",
            '  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 9, in app',
            "    await f()",
            '  File "/srv/shop/pay.py", line 4, in pay',
            "    charge()",
            '  File "/venv/lib/python3.11/site-packages/stripe/api.py", line 7, in charge',
            "    raise ValueError('x')",
            "KeyError: 'card'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "/srv/shop/pay.py", line 6, in pay',
            "    raise PaymentError('declined: no card')",
            "shop.errors.PaymentError: declined: no card",
            "INFO:     Shutting down",
        ]
    )
    assert parse_exceptions(log) == [
        ServerException("shop.errors.PaymentError", "declined: no card", "/srv/shop/pay.py:6")
    ]


def test_exceptions_pair_with_the_500s_in_finishing_order_and_the_rest_keep_their_status() -> None:
    requests = [
        _request("R1", "/a", 500, done=30),
        _request("R2", "/b", 500, done=10),
        _request("R3", "/c", 200, done=5),
        _request("R4", "/c", 404, done=6),
        _request("R5", "/d", None, done=7, error="ServerDisconnectedError: Server disconnected"),
        _request("R6", "/e", 503, done=8),
    ]
    logged = [
        ServerException("Warmup", "from the warm-up", None),
        ServerException("KeyError", "'b'", "b.py:1"),
        ServerException("ValueError", "a", "a.py:2"),
    ]
    assert summarize_failures(requests, logged) == [
        Failure("GET /a", 500, 1, "ValueError", "a", "a.py:2"),
        Failure("GET /b", 500, 1, "KeyError", "'b'", "b.py:1"),
        Failure("GET /d", None, 1, "ServerDisconnectedError", "Server disconnected"),
        Failure("GET /e", 503, 1),
    ]


def test_a_causes_sentence_says_what_is_known() -> None:
    assert Failure("/a", 500, 2, "RuntimeError", "boom", "app.py:3").cause == (
        "RuntimeError: boom at app.py:3"
    )
    assert Failure("/a", 503, 1).cause == ""


def test_calling_an_asgi_app_as_a_factory_is_recognised() -> None:
    tail = (
        "TypeError: FastAPI.__call__() missing 3 required positional arguments: "
        "'scope', 'receive', and 'send'"
    )
    assert is_not_a_factory(tail)
    assert not is_not_a_factory("ModuleNotFoundError: No module named 'x'")
