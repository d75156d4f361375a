"""The `loopscope` command as a user runs it: exit codes, one-line errors, files written."""

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


def test_the_demo_prints_the_table_and_writes_json_and_html(tmp_path: Path) -> None:
    # 400 ms of I/O: on a machine busy with other work a request's overhead can reach tens of
    # ms, which must not make one wave of I/O read as two.
    result = loopscope(
        "demo",
        "--io-ms",
        "400",
        "--modes",
        "async-blocking,async",
        "--json",
        str(tmp_path / "runs.json"),
        "--html",
        str(tmp_path / "report.html"),
    )
    assert result.returncode == 0, result.stderr
    assert "async-blocking" in result.stdout and "makespan" in result.stdout
    assert "requests ran one after another" in result.stdout
    assert "all 3 overlapped" in result.stdout
    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    assert [run["mode"] for run in runs] == ["async-blocking", "async"]
    assert (tmp_path / "report.html").stat().st_size > 1000
    assert str((tmp_path / "report.html").resolve()) in result.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["demo", "--modes", "turbo", "--no-html"], 2, "Unknown mode turbo"),
        (["trace", "x:app", "--hit", "GET nowhere", "--no-html"], 2, "must start with '/'"),
        (["trace", "x:app", "--hit", "GET /", "--loop", "trio", "--no-html"], 2, "--loop"),
        (["trace", "no_such_module:app", "--hit", "GET /", "--no-html"], 3, "no_such_module"),
    ],
)
def test_bad_input_is_one_message_and_an_exit_code(
    args: list[str], code: int, message: str
) -> None:
    result = loopscope(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_trace_file_is_reported_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "run": {"mode": 3}, "requests": []}')
    result = loopscope("report", str(bad))
    assert result.returncode == 5
    assert "run.mode: Input should be a valid string" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = loopscope("--debug", "report", str(bad))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_brackets_in_a_route_do_not_break_the_summary_and_the_trace_is_kept(
    tmp_path: Path,
) -> None:
    out = tmp_path / "t.json"
    result = loopscope(
        "trace", "server_apps:app", "--app-dir", str(APPS), "--no-html", "--json", str(out),
        "--hit", "GET /echo?x=[/]", "--hit", "GET /nope[red]x",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.exists()
    assert "/nope[red]x" in result.stdout


def test_a_bad_file_among_good_ones_is_reported_and_the_rest_rendered(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    first = loopscope("demo", "--io-ms", "0", "--modes", "async", "--no-html", "--json", str(good))
    assert first.returncode == 0, first.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = loopscope("report", str(bad), str(good), "--html", str(tmp_path / "r.html"))
    assert result.returncode == 5
    assert "bad.json is not valid JSON" in result.stderr
    assert (tmp_path / "r.html").exists()
    assert "async" in result.stdout
