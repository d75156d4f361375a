"""`loopscope trace --workers 2` end to end, as a user runs it: one trace, a loop lane per
worker, requests tagged by worker, the accept queue measured, in the console and the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loopscope.trace import load_trace

APPS = Path(__file__).parent / "apps"


def _trace_workers_app(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`loopscope trace workers_app:app ARGS` as a user runs it, at 120 columns."""
    return subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", "workers_app:app", "--app-dir", str(APPS),
         *args],
        capture_output=True, text=True, timeout=timeout,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_trace_with_two_workers_shows_each_workers_loop_and_the_accept_queue(
    tmp_path: Path,
) -> None:
    out, html = tmp_path / "t.json", tmp_path / "t.html"
    result = _trace_workers_app(
        "--workers", "2", "--loop", "asyncio", "--http", "h11",
        "--users", "4", "--rounds", "2", "--json", str(out), "--html", str(html),
        "--hit", "GET /block?ms=120&close=1", "--hit", "GET /crunch?ms=60&close=1",
        "--hit", "GET /nap?ms=120&close=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    trace = load_trace(out)
    pids = {w.pid for w in trace.workers}
    assert len(pids) == 2 and trace.run.workers == 2
    assert (trace.run.loop, trace.run.http) == ("asyncio", "h11")
    assert {r.worker for r in trace.requests} <= pids and len(trace.requests) == 24
    assert trace.accept_queue and trace.run.queue_sample_ms

    stdout = result.stdout
    assert "on uvicorn (asyncio, h11, 2 worker(s)" in stdout
    assert "Requests served per worker process: " in stdout
    assert "Accept queue (kernel, sampled every 2 ms)" in stdout
    assert "workers_app.py:" in stdout
    page = html.read_text()
    for pid in pids:
        assert f'data-lane="loop:{pid}"' in page
    assert 'data-lane="accept-queue"' in page
    assert "worker processes" in page


def test_trace_under_gunicorn_merges_every_uvicorn_worker_into_one_trace(tmp_path: Path) -> None:
    """`--server gunicorn`: gunicorn's arbiter over uvicorn's worker class, a probe in each
    worker, under uvloop (the loop production runs), blocks at their line in either worker."""
    out = tmp_path / "t.json"
    result = _trace_workers_app(
        "--server", "gunicorn", "--workers", "2", "--loop", "uvloop",
        "--users", "4", "--rounds", "2", "--json", str(out), "--no-html",
        "--hit", "GET /block?ms=120&close=1", "--hit", "GET /nap?ms=120&close=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    trace = load_trace(out)
    pids = {w.pid for w in trace.workers}
    assert len(pids) == 2 and trace.run.server == "gunicorn"
    assert (trace.run.loop, trace.run.precise) == ("uvloop", True)
    assert len(trace.requests) == 16 and {r.worker for r in trace.requests} <= pids
    blamed = {b.request_id for b in trace.loop_blocks if b.where and "workers_app.py:" in b.where}
    blocking = {r.id for r in trace.requests if r.route == "/block"}
    assert blocking and blocking <= blamed
    assert not blamed & {r.id for r in trace.requests if r.route == "/nap"}
    assert "on gunicorn (uvloop" in result.stdout


def test_trace_refuses_a_server_that_cannot_run_the_probe(tmp_path: Path) -> None:
    result = _trace_workers_app(
        "--server", "gunicorn-sync", "--hit", "GET /nap", "--no-html", timeout=60
    )
    assert result.returncode == 2
    assert "--server must be one of uvicorn, gunicorn, not 'gunicorn-sync'." in result.stderr
    assert "Traceback" not in result.stderr
