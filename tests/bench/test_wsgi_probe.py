"""The WSGI probe: each request's start and end on the driver's clock, its status, its route
template, the worker process and the thread that served it, as a `ServerRecord` per worker.

In process through werkzeug's test client (the WSGI protocol itself, response closed as a server
closes it), and in real gunicorn sync and gthread workers started by `ServerProcess`.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from loopscope.probe.wsgi import WsgiProbe, thread_lane
from loopscope.server import ServerProcess, ServerSettings
from loopscope.trace.constants import REQUEST_HEADER
from loopscope.trace.record import WSGI_LOOP, ServerRecord

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def flask_app() -> Any:
    sys.path.insert(0, str(APPS))
    try:
        from wsgi_users import create_app

        return create_app()
    finally:
        sys.path.remove(str(APPS))


def test_each_request_is_stamped_with_its_id_status_route_and_thread(flask_app: Any) -> None:
    probe = WsgiProbe()
    client = Client(probe.wsgi(flask_app))
    before = time.monotonic_ns()
    statuses = [
        client.get("/users/7", headers={REQUEST_HEADER: "R1"}, buffered=True).status_code,
        client.get("/users/8", headers={REQUEST_HEADER: "R1"}, buffered=True).status_code,
        client.get("/users/9", buffered=True).status_code,
        client.get("/boom", headers={REQUEST_HEADER: "R<2>"}, buffered=True).status_code,
        client.get("/nowhere", headers={REQUEST_HEADER: "R3"}, buffered=True).status_code,
    ]
    after = time.monotonic_ns()
    assert statuses == [200, 200, 200, 500, 404]
    record = probe.collect()
    assert (record.pid, record.loop, record.precise) == (os.getpid(), WSGI_LOOP, False)
    pid = os.getpid()
    # A repeated id gets `.2`; no id, a generated one; the id sanitized as the ASGI probe does.
    assert record.request_ids == ["R1", "R1.2", f"s{pid}-1", "R2", "R3"]
    assert [r.status for r in record.requests] == statuses
    # Flask's rule is the route (not the path); an unmatched path stays the path.
    routes = [r.route for r in record.requests]
    assert routes == ["/users/<int:uid>"] * 3 + ["/boom", "/nowhere"]
    assert [r.path for r in record.requests][:3] == ["/users/7", "/users/8", "/users/9"]
    lane = thread_lane(pid, threading.current_thread().name)
    last_end = before
    for request in record.requests:
        assert request.method == "GET"
        end = request.server_end_ns
        assert end is not None and last_end <= request.server_start_ns <= end <= after
        last_end = end
        (segment,) = request.segments
        assert segment.state == "in-thread" and segment.lane == f"request:{request.id}"
        assert (segment.start_ns, segment.end_ns) == (request.server_start_ns, end)
        assert segment.cpu_ns is not None and 0 <= segment.cpu_ns <= end - request.server_start_ns
        assert request.loop_steps is None and request.pool_hops == 0
    assert [(s.lane, s.request_id) for s in record.lanes] == [(lane, r.id) for r in record.requests]
    assert record.counts.dropped_events == record.counts.probe_errors == 0


def test_a_raising_app_is_recorded_without_a_status_and_still_raises() -> None:
    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("the app failed")

    probe = WsgiProbe()
    app = probe.wsgi(broken)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "HTTP_X_LOOPSCOPE_REQUEST": "B1"}
    with pytest.raises(RuntimeError, match="the app failed"):
        app(environ, lambda status, headers, exc_info=None: None)
    (request,) = probe.collect().requests
    assert (request.id, request.method, request.status, request.route) == ("B1", "POST", None, "/x")
    assert request.server_end_ns is not None


def test_past_its_budget_the_probe_counts_what_it_dropped(flask_app: Any) -> None:
    probe = WsgiProbe(max_requests=2)
    client = Client(probe.wsgi(flask_app))
    for uid in range(3):
        assert client.get(f"/users/{uid}", buffered=True).status_code == 200
    record = probe.collect()
    assert len(record.requests) == 2 and len(record.lanes) == 2
    assert record.counts.dropped_events == 1


def _send_together(url: str, ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """Each id's request sent at once from its own thread: id → (status, send, done)."""
    out: dict[str, tuple[int, int, int]] = {}

    def one(request_id: str) -> None:
        request = urllib.request.Request(url, headers={REQUEST_HEADER: request_id})
        sent = time.monotonic_ns()
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            out[request_id] = (answer.status, sent, time.monotonic_ns())

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


def _served(
    server: str, workers: int, threads: int | None, ids: list[str]
) -> tuple[dict[str, tuple[int, int, int]], list[ServerRecord]]:
    settings = ServerSettings(
        app="wsgi_users:create_app",
        app_dir=str(APPS),
        factory=True,
        server=server,
        workers=workers,
        threads=threads,
        probe=True,
        env={"WSGI_USERS_SLEEP_MS": "200"},
    )
    process = ServerProcess(settings)
    try:
        with process:
            sent = _send_together(f"{process.url}/users/1", ids)
        return sent, process.probe_records()
    finally:
        process.close()


def _inside_the_clients_view(
    sent: dict[str, tuple[int, int, int]], records: list[ServerRecord]
) -> None:
    for record in records:
        for request in record.requests:
            status, send, done = sent[request.id]
            assert request.status == status == 200
            assert request.server_end_ns is not None
            assert send <= request.server_start_ns < request.server_end_ns <= done
            assert request.route == "/users/<int:uid>"


@pytest.mark.slow
def test_each_gunicorn_sync_worker_writes_its_own_record_at_exit() -> None:
    ids = [f"B{n}" for n in range(1, 9)]
    sent, records = _served("gunicorn-sync", 2, None, ids)
    assert sorted(sent) == sorted(ids)
    # Two workers, each one request at a time for 200 ms: eight sent at once need both.
    assert len(records) == 2 and len({r.pid for r in records}) == 2
    assert all(r.loop == WSGI_LOOP for r in records)
    assert sorted(i for r in records for i in r.request_ids) == sorted(ids)
    _inside_the_clients_view(sent, records)
    for record in records:
        assert {s.lane for s in record.lanes} == {thread_lane(record.pid, "MainThread")}
        spans = sorted((r.server_start_ns, r.server_end_ns or 0) for r in record.requests)
        # A sync worker serves one request at a time: its requests never overlap.
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@pytest.mark.slow
def test_a_gthread_worker_serves_from_several_threads_each_its_own_lane() -> None:
    ids = [f"B{n}" for n in range(1, 5)]
    sent, records = _served("gunicorn-gthread", 1, 4, ids)
    (record,) = records
    assert sorted(record.request_ids) == sorted(ids)
    _inside_the_clients_view(sent, records)
    lanes = {s.lane for s in record.lanes}
    assert len(lanes) >= 2, lanes
    assert all(lane.startswith(f"thread:{record.pid}/") for lane in lanes)
    # Threads of one worker serve at once: some two requests overlap.
    spans = sorted((r.server_start_ns, r.server_end_ns or 0) for r in record.requests)
    assert any(a[1] > b[0] for a, b in itertools.pairwise(spans))


def test_a_wsgi_trace_reads_as_a_wsgi_server_not_as_a_loop_or_a_pool(flask_app: Any) -> None:
    from rich.console import Console

    from loopscope.report.console import trace_summary
    from loopscope.report.explain import explain
    from loopscope.report.views import run_view
    from loopscope.report.words import WSGI_VERDICT
    from loopscope.trace.merge import build_trace
    from loopscope.trace.model import Request, Run

    probe = WsgiProbe()
    client = Client(probe.wsgi(flask_app))
    requests = []
    for n in (1, 2):
        sent = time.monotonic_ns()
        status = client.get("/users/1", headers={REQUEST_HEADER: f"B{n}"}, buffered=True)
        done = time.monotonic_ns()
        requests.append(
            Request(f"B{n}", "GET", "/users/1", "/users/1", status.status_code, sent, done)
        )
    run = Run(mode="blocking", app="wsgi_users:create_app", server="gunicorn-sync", threads=1)
    trace = build_trace(run, requests, [probe.collect()])
    assert trace.run.loop == WSGI_LOOP
    assert not any("watchdog" in note for note in trace.run.notes)
    assert all(r.route == "/users/<int:uid>" and r.worker == os.getpid() for r in trace.requests)
    said = " ".join(explain(trace))
    assert "A WSGI server, no event loop" in said and "coroutines" not in said
    view = run_view(trace, svg="")
    facts = dict(view.facts)
    assert facts["loop"] == "none (WSGI)" and facts["threads"] == "1 per worker"
    assert "thread pool" not in facts and facts["probe"] == "WSGI middleware"
    assert view.wsgi and view.pool == [] and view.pool_waits == []
    assert [v["text"] for v in view.verdicts] == [WSGI_VERDICT]
    console = Console(width=300, record=True)
    for part in trace_summary(trace):
        console.print(part)
    text = " ".join(console.export_text().split())  # however the console wrapped it
    assert "No event loop: a WSGI server" in text and "Thread pool:" not in text
    assert "1 thread(s) per worker" in text and "probe: WSGI middleware" in text
