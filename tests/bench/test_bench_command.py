"""`loopscope bench` as a user runs it: the table, the JSON of the issue's shape, the HTML
curves with each saturation explained from the model, and with --probe every point's trace and
timeline, linked from the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.trace.io import load_traces

POINT_KEYS = {
    "server", "mode", "rate", "achieved_rps", "sent", "ok", "errors", "p50_ms", "p90_ms",
    "p99_ms", "p999_ms", "max_ms", "driver_cpu",
}  # fmt: skip
"""The keys the issue gives every point; more may follow them."""


def loopscope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


@pytest.mark.slow
def test_bench_writes_the_table_json_and_curves_with_the_models_explanation(
    tmp_path: Path,
) -> None:
    result = loopscope(
        "bench", "--servers", "gunicorn-sync:1,uvicorn:1", "--modes", "async",
        "--rates", "5,40", "--duration", "1", "--io-ms", "50",
        "--json", "bench.json", "--html", "bench.html", "--probe",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    record = json.loads((tmp_path / "bench.json").read_text())
    points = record["points"]
    assert [(p["server"], p["mode"], p["rate"]) for p in points] == [
        ("gunicorn-sync:1", "blocking", 5),
        ("gunicorn-sync:1", "blocking", 40),
        ("uvicorn:1", "async", 5),
        ("uvicorn:1", "async", 40),
    ]
    for p in points:
        assert set(p) >= POINT_KEYS
        assert p["sent"] == p["rate"] * 1 and p["ok"] + p["errors"] + p["timeouts"] == p["sent"]
        assert 0 < p["driver_cpu"] < 1
        assert p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"] <= p["p999_ms"] <= p["max_ms"]
    # 1 sync worker, 50 ms each: 20 req/s at most; offered 40, it saturates; async does not.
    sync_40, async_40 = points[1], points[3]
    assert sync_40["capacity_rps"] == 20 and sync_40["saturated"]
    assert sync_40["achieved_rps"] < 30
    assert not async_40["saturated"]
    assert record["run"]["duration_s"] == 1 and record["run"]["io_ms"] == 50

    assert "saturated at 40 req/s offered" in result.stdout
    assert "serves at most 1 / 0.05 s = 20 req/s" in result.stdout
    html = (tmp_path / "bench.html").read_text()
    assert "<svg" in html and "<polyline" in html
    assert "serves at most 1 / 0.05 s = 20 req/s; past that the accept queue grows" in html
    assert "Little&#39;s law holds" in html

    # --probe: every point keeps its trace (the WSGI ones too), loadable by `report`, and its
    # timeline; the report links both, the JSON names the trace.
    folder = tmp_path / "bench-traces"
    names = ["gunicorn-sync-1-blocking-5", "gunicorn-sync-1-blocking-40"]
    names += ["uvicorn-1-async-5", "uvicorn-1-async-40"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{n}.{suffix}" for n in names for suffix in ("json", "html")
    )
    assert [p["trace"] for p in points] == [f"bench-traces/{n}.json" for n in names]
    for name, point in zip(names, points, strict=True):
        assert f'<a href="bench-traces/{name}.html">timeline</a>' in html
        assert f'<a href="bench-traces/{name}.json">JSON</a>' in html
        trace = load_traces(folder / f"{name}.json")[0]
        assert len(trace.requests) == point["sent"]
        assert trace.run.probe, "the probe's counters are in the trace"
        assert all(r.server_start_ns is not None for r in trace.requests), name
    saturated = (folder / "gunicorn-sync-1-blocking-40.html").read_text()
    assert "gunicorn-sync:1 blocking at 40 req/s, where it saturated" in saturated
    assert "No event loop: a WSGI server." in saturated


def test_bench_refuses_bad_input_before_starting_anything(tmp_path: Path) -> None:
    for args, words in (
        (("--servers", "nginx:2"), "must look like NAME:W"),
        (("--modes", "async,turbo"), "Unknown mode 'turbo'"),
        (("--rates", "fast"), "--rates takes numbers"),
        (("--rates", "0"), "positive rates"),
        (("--arrivals", "bursty"), "Unknown --arrivals"),
        (("--png", "x.png", "--no-html"), "drop --no-html"),
    ):
        result = loopscope("bench", *args, cwd=tmp_path)
        assert result.returncode != 0
        assert words in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bench_probe_without_html_keeps_the_traces_beside_the_json(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    result = loopscope(
        "bench", "--servers", "gunicorn-gthread:2x2", "--rates", "5", "--duration", "1",
        "--io-ms", "20", "--probe", "--no-html", "--json", "out/b.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    (point,) = json.loads((tmp_path / "out" / "b.json").read_text())["points"]
    assert point["trace"] == "b-traces/gunicorn-gthread-2x2-blocking-5.json"
    trace = load_traces(tmp_path / "out" / point["trace"])[0]
    assert len(trace.requests) == point["sent"] == 5
    assert trace.run.loop == "wsgi" and trace.run.threads == 2
    assert all(s.lane.startswith("thread:") for s in trace.lanes) and trace.lanes
    assert not (tmp_path / "loopscope-bench.html").exists()
