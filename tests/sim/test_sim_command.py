"""`loopscope sim` as a user runs it: the summary, the trace file, and one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"


def loopscope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


def test_sim_of_a_mode_prints_a_summary_marked_simulated_and_writes_a_trace(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sim.json"
    result = loopscope(
        "sim", "--mode", "async-blocking", "--users", "3", "--json", str(out), "--no-html"
    )
    assert result.returncode == 0, result.stderr
    assert "simulated" in result.stdout
    assert "The event loop was blocked 3 times" in result.stdout
    assert "Assumed: 2 CPU cores" in result.stdout
    data = json.loads(out.read_text())
    assert data["run"]["source"] == "simulated"
    assert len(data["requests"]) == 3


def test_sim_of_own_routes_writes_an_html_report(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    result = loopscope(
        "sim",
        "--route",
        "/orders/{id}=cpu:2, io:50",
        "--route",
        "/fine=cpu:1, await:30",
        "--users",
        "4",
        "--html",
        str(html),
    )
    assert result.returncode == 0, result.stderr
    assert "/orders/{id}" in result.stdout and "/fine" in result.stdout
    assert "simulated" in html.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--route", "/x=cpu:two"], "cannot read 'cpu:two'"),
        (["--route", "/x=io:-5"], "negative"),
        (["--mode", "turbo"], "Unknown mode 'turbo'"),
        (["--mode", "async", "--cores", "0"], "--cores must be at least 1"),
        (["--mode", "async", "--threads", "0"], "--threads must be at least 1"),
        (["--mode", "async", "--io-ms", "-1"], "--io-ms must not be negative"),
        (["--mode", "async", "--rounds", "0"], "--rounds must be at least 1"),
        (["--route", "/x=cpu:1", "--io-ms", "5"], "goes with --mode only"),
        (["--mode", "async", "--rate", "0", "--duration", "3"], "must be positive"),
        (["--mode", "async", "--rate", "10"], "--rate and --duration go together"),
        (["--mode", "async", "--change", "/nope=offload"], "not among the routes"),
        (["--mode", "async", "--change", "/info/async=offload"], "changes nothing"),
        (["--mode", "async", "--route", "/x=cpu:1"], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    result = loopscope("sim", "--no-html", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_calibrating_from_a_trace_without_server_data_is_a_clear_error(tmp_path: Path) -> None:
    trace = {
        "version": 1,
        "run": {"mode": "trace", "app": "x:app"},
        "requests": [
            {
                "id": "R1",
                "method": "GET",
                "path": "/x",
                "route": "/x",
                "status": 200,
                "client_send_ns": 0,
                "client_done_ns": 5_000_000,
                "segments": [],
            }
        ],
    }
    path = tmp_path / "client-only.json"
    path.write_text(json.dumps(trace))
    result = loopscope("sim", "--from", str(path), "--no-html")
    assert result.returncode == 2
    assert "only the client's view" in result.stderr
    assert "Traceback" not in result.stderr


def test_seed_diagrams_print_the_finish_times_beside_the_seeds() -> None:
    result = loopscope("sim", "--seed-diagrams")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "T1.00, T2.00, T3.00" in out and "≈T4" in out and "≈T1.5" in out
    assert "does not" in out and "follow" in out


def test_sim_from_a_measured_trace_prints_the_fit_the_baseline_and_the_prediction(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "two.json"
    traced = loopscope(
        "trace",
        "library:app",
        "--app-dir",
        str(APPS),
        "--hit",
        "GET /books/1",
        "--hit",
        "GET /feed",
        "--users",
        "2",
        "--json",
        str(trace),
        "--no-html",
    )
    assert traced.returncode == 0, traced.stderr
    result = loopscope(
        "sim",
        "--from",
        str(trace),
        "--users",
        "4",
        "--change",
        "/books/{book_id}=offload",
        "--no-html",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Fitted recipes" in out and "/books/{book_id}" in out and "io:" in out
    assert "measured" in out and "prediction (changed)" in out
    # Offloaded, the helper no longer blocks the loop.
    assert "The event loop was never blocked" in out


def test_demo_compare_sim_puts_the_model_next_to_each_measured_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs.json"
    result = loopscope(
        "demo",
        "--io-ms",
        "60",
        "--modes",
        "async-blocking",
        "--compare-sim",
        "--json",
        str(runs),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert result.returncode == 0, result.stderr
    assert "async-blocking (simulated)" in result.stdout
    data = json.loads(runs.read_text())["runs"]
    assert [r["run"]["source"] for r in data] == ["measured", "simulated"]
    assert abs(data[1]["makespan_s"] / data[0]["makespan_s"] - 1) < 0.25
    assert "badge simulated" in (tmp_path / "r.html").read_text()


def test_steal_is_an_assumption_that_can_be_set(tmp_path: Path) -> None:
    out = tmp_path / "busy.json"
    result = loopscope(
        "sim", "--route", "/c=cpu:30", "--steal", "0.5", "--json", str(out), "--no-html"
    )
    assert result.returncode == 0, result.stderr
    assert "other processes take a share 0.50 of the cores" in result.stdout
    data = json.loads(out.read_text())
    assert "sim:steal=0.50" in data["run"]["notes"]
    assert [b["end_ns"] - b["start_ns"] for b in data["loop_blocks"]] == [60_000_000]
    bad = loopscope("sim", "--route", "/c=cpu:30", "--steal", "1", "--no-html")
    assert bad.returncode == 2
    assert "--steal must be from 0 to 0.9" in bad.stderr + bad.stdout
