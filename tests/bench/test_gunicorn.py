"""gunicorn as a server kind: starts on a free port it reports itself, serves the demo's users
service (WSGI under sync and gthread workers, ASGI under uvicorn's worker), stops with no
process left behind."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from loopscope.demo import DemoSettings
from loopscope.server import ServerProcess, ServerSettings

WSGI = "loopscope.demo.wsgi:create_wsgi_app"
ASGI = "loopscope.demo:create_app"


def post(url: str, body: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def group_ends(pgid: int, within_s: float = 10.0) -> bool:
    """Whether every process of group `pgid` has exited within `within_s` (workers told to
    stop may take a moment to finish their request and exit)."""
    deadline = time.monotonic() + within_s
    while pids_of_group(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pids_of_group(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.parametrize(
    ("server", "app", "variant"),
    [
        ("gunicorn-sync", WSGI, "blocking"),
        ("gunicorn-gthread", WSGI, "blocking"),
        ("gunicorn", ASGI, "async"),
    ],
)
def test_gunicorn_kinds_serve_the_users_service_and_leave_no_orphan(
    server: str, app: str, variant: str
) -> None:
    settings = ServerSettings(
        app=app,
        factory=True,
        server=server,
        workers=2,
        threads=2,
        env=DemoSettings(io_ms=0, users=5).to_env(),
    )
    process = ServerProcess(settings)
    with process:
        assert process.pid is not None
        pgid = process.pid
        assert f"Listening at: http://127.0.0.1:{process.port}" in process.log_text()
        # Both workers boot and serve: more processes than the arbiter alone.
        status, body = post(f"{process.url}/info/{variant}", {"username": "user3"})
        assert status == 200
        assert body == {"username": "user3", "info": "user3 joined in 2003 and likes tea"}
        assert len(pids_of_group(pgid)) >= 3
        status, _ = post(f"{process.url}/history/{variant}", {"username": "nobody"})
        assert status == 404
    process.close()
    assert group_ends(pgid)


def test_the_wsgi_app_answers_as_the_asgi_app_does() -> None:
    answers = []
    for server, app, variant in (
        ("gunicorn-sync", WSGI, "blocking"),
        ("uvicorn", ASGI, "blocking"),
    ):
        settings = ServerSettings(
            app=app, factory=True, server=server, env=DemoSettings(io_ms=0, users=5).to_env()
        )
        process = ServerProcess(settings)
        with process:
            answers.append(
                [
                    post(f"{process.url}/login/{variant}", {"username": "user1", "password": p})
                    for p in ("password1", "wrong")
                ]
                + [post(f"{process.url}/history/{variant}", {"username": "user2"})]
            )
        process.close()
    wsgi, asgi = answers
    assert [status for status, _ in wsgi] == [status for status, _ in asgi] == [200, 401, 200]
    assert wsgi[0][1] == asgi[0][1] == {"message": "Welcome, user1!"}
    assert wsgi[2][1] == asgi[2][1]


def test_a_gunicorn_killed_hard_takes_its_workers_along() -> None:
    settings = ServerSettings(
        app=WSGI,
        factory=True,
        server="gunicorn-sync",
        workers=2,
        env=DemoSettings(io_ms=0).to_env(),
    )
    process = ServerProcess(settings)
    process.start()
    try:
        assert process.pid is not None
        pgid = process.pid
        os.kill(pgid, signal.SIGKILL)  # the arbiter dies without stopping its workers
    finally:
        process.close()
    assert group_ends(pgid)
