"""`loopscope trace` on a user's app it has never seen: blocks found at their exact lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.trace import Trace, load_trace

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def shop_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, str]:
    out = tmp_path_factory.mktemp("shop") / "shop.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "loopscope", "trace", "shop.main:app",
            "--app-dir", str(APPS), "--users", "2", "--no-html", "--json", str(out),
            "--hit", "GET /orders/alice", "--hit", "GET /crunch",
            "--hit", "GET /fine", "--hit", "GET /sync",
        ],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return load_trace(out), result.stdout


def _blocks(trace: Trace, route: str) -> list[tuple[str | None, int, int | None]]:
    """`(where, wall, busy)` of the route's blocks; `busy` is the loop thread's CPU time plus its
    time in the run queue (ready to run, but the busy machine ran something else)."""
    ids = {r.id for r in trace.requests if r.route == route}
    return [
        (b.where, b.duration_ns, None if b.cpu_ns is None else b.cpu_ns + (b.runnable_ns or 0))
        for b in trace.loop_blocks
        if b.request_id in ids and b.kind == "code"
    ]


def test_a_block_two_calls_down_in_another_module_is_found_at_its_line(
    shop_trace: tuple[Trace, str],
) -> None:
    trace, _ = shop_trace
    blocks = _blocks(trace, "/orders/{customer}")
    assert len(blocks) == 2  # one per user
    for where, wall, cpu in blocks:
        assert where == "shop/repo.py:9"
        assert cpu is not None and cpu < 0.3 * wall  # waiting, not CPU


def test_a_cpu_loop_is_found_at_its_line_and_called_cpu(shop_trace: tuple[Trace, str]) -> None:
    trace, _ = shop_trace
    blocks = _blocks(trace, "/crunch")
    assert len(blocks) == 2
    for where, wall, cpu in blocks:
        assert where in ("shop/services.py:15", "shop/services.py:16")
        assert cpu is not None and cpu > 0.6 * wall


def test_awaiting_and_thread_pool_routes_do_not_block_the_loop(
    shop_trace: tuple[Trace, str],
) -> None:
    trace, _ = shop_trace
    assert _blocks(trace, "/fine") == []
    assert _blocks(trace, "/sync") == []
    sync = [r for r in trace.requests if r.route == "/sync"]
    assert all((r.pool_hops or 0) >= 1 for r in sync)
    assert all(any(s.state == "in-thread" for s in r.segments) for r in sync)


def test_the_summary_gives_a_verdict_per_route_in_plain_words(
    shop_trace: tuple[Trace, str],
) -> None:
    _, stdout = shop_trace
    assert "blocks the event loop at shop/repo.py:9" in stdout
    assert "I/O wait" in stdout
    assert "CPU-bound at shop/services.py:1" in stdout
    assert "The event loop was blocked" in stdout


def test_the_trace_file_keeps_the_json_contract(shop_trace: tuple[Trace, str]) -> None:
    trace, _ = shop_trace
    assert trace.version == 2 and trace.run.precise and trace.run.source == "measured"
    assert json.loads(json.dumps(trace.run.probe))["probe_errors"] == 0


def test_under_uvloop_task_steps_are_timed_and_the_line_is_found(
    tmp_path: Path,
) -> None:
    out = tmp_path / "uvloop.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "loopscope", "trace", "shop.main:app", "--app-dir", str(APPS),
            "--loop", "uvloop", "--no-html", "--json", str(out), "--hit", "GET /orders/bob",
        ],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "probe: precise" in result.stdout
    assert "Under uvloop only task steps are timed" in result.stdout
    trace = load_trace(out)
    assert trace.run.loop == "uvloop" and trace.run.precise
    assert all(r.loop_steps for r in trace.requests)
    assert [b.where for b in trace.loop_blocks if b.kind == "code"] == ["shop/repo.py:9"]


def test_a_cpu_loop_on_a_busy_core_is_still_called_cpu_bound() -> None:
    from loopscope.load import Hit, uniform_scenario
    from loopscope.measure.run import describe_run, measure
    from loopscope.server import ServerSettings
    from loopscope.trace.analysis import top_loop_blocks

    settings = ServerSettings(app="shop.main:app", app_dir=str(APPS), probe=True, cpus=(0,))
    scenario = uniform_scenario([Hit("GET", "/crunch")], users=1, rounds=3)
    # A busy loop on the server's core: the loop thread now waits for the CPU half the time.
    hog = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-c",
            "import time\nt=time.time()+60\nwhile time.time()<t: pass",
        ]
    )
    try:
        trace = measure(settings, scenario, describe_run(settings, scenario, "busy"))
    finally:
        hog.kill()
        hog.wait()
    (group,) = [g for g in top_loop_blocks(trace) if g.kind == "code"]
    assert group.where in ("shop/services.py:15", "shop/services.py:16")
    assert group.runnable_ns > 0.2 * group.total_ns  # the hog really took the core
    assert group.cpu_bound
