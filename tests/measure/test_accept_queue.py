"""The accept queue read from the kernel: exact on a socket we hold, and filled by a real
uvicorn whose loop is blocked while new connections arrive."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.load import parse_hit, uniform_scenario
from loopscope.measure.accept_queue import AcceptQueueReader
from loopscope.measure.run import describe_run, measure
from loopscope.report.console import trace_summary
from loopscope.report.timeline import render_timeline
from loopscope.server import ServerSettings
from loopscope.trace.processes import accept_queue_stats

APPS = Path(__file__).parents[1] / "apps"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


@pytest.mark.parametrize("waiting", [0, 1, 5])
def test_the_reader_counts_connections_the_kernel_completed_and_nobody_accepted(
    listener: socket.socket, waiting: int
) -> None:
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(waiting)]
    try:
        with AcceptQueueReader("127.0.0.1", port) as reader:
            before = reader.read()
            if waiting:
                listener.accept()[0].close()
            after = reader.read()
    finally:
        for client in clients:
            client.close()
    assert (before.depth, before.backlog, before.sockets) == (waiting, 16, 1)
    assert after.depth == max(0, waiting - 1)


def test_a_port_nobody_listens_on_reads_as_no_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening
        with AcceptQueueReader("127.0.0.1", sock.getsockname()[1]) as reader:
            assert reader.read().sockets == 0


def test_new_connections_wait_in_the_accept_queue_while_the_loop_is_blocked() -> None:
    # Each answer closes its connection (`close=1`), so every user's next request needs a new
    # connection, which the blocked loop cannot accept: the seed's accept queue, measured.
    settings = ServerSettings(app="workers_app:app", app_dir=str(APPS), probe=True)
    scenario = uniform_scenario([parse_hit("GET /block?ms=100&close=1")], users=6, rounds=3)
    trace = measure(settings, scenario, describe_run(settings, scenario, "trace"))

    stats = accept_queue_stats(trace)
    assert stats is not None and trace.run.queue_sample_ms == 2.0
    assert stats.peak >= 2, trace.accept_queue
    assert stats.backlog == 2048  # uvicorn's default backlog (under the kernel's somaxconn)
    # The queue held connections only while a block held the loop (within a sampling period).
    slack = 5_000_000
    blocks = [(b.start_ns - slack, b.end_ns + slack) for b in trace.loop_blocks]
    for sample in trace.accept_queue:
        if sample.depth > 0:
            assert any(lo <= sample.t_ns <= hi for lo, hi in blocks), sample
    svg = render_timeline(trace)
    assert 'data-lane="accept-queue"' in svg and 'class="queue"' in svg
    text = " ".join(str(part) for part in trace_summary(trace))
    assert f"peak {stats.peak} connections waiting" in text


def test_without_a_sampling_period_the_queue_is_not_read_but_workers_are_still_known() -> None:
    settings = ServerSettings(app="workers_app:app", app_dir=str(APPS))
    scenario = uniform_scenario([parse_hit("GET /pid")], users=1)
    trace = measure(
        settings, scenario, describe_run(settings, scenario, "trace"), queue_period_ms=None
    )
    assert trace.accept_queue == [] and trace.run.queue_sample_ms is None
    assert len(trace.workers) == 1 and trace.workers[0].http == "h11"
