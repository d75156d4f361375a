"""Bad input to loopscope: one clear message naming the file or app, the documented exit code,
no traceback of ours without `--debug`, and whatever was measured before a crash kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopscope.errors import EXIT_CODES, ServerError, TraceError, UsageError
from loopscope.probe.loop import PURE_PYTHON_ENV

APPS = str(Path(__file__).parents[1] / "apps")


def _loopscope(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **(env or {})},
    )


def _one_error(run: subprocess.CompletedProcess[str], code: int) -> str:
    """The run's one error message, checked: exit `code`, no traceback through loopscope."""
    assert run.returncode == code, run.stdout[-1500:] + run.stderr[-1500:]
    assert run.stderr.count("error:") == 1, run.stderr
    assert "Traceback" not in run.stderr.split("--- server log")[0]
    assert "loopscope/cli" not in run.stderr
    return run.stderr


TRACE_FILES = {
    "missing.json": None,
    "empty.json": b"",
    "truncated.json": b'{"version": 2, "run": {"mode": "async", "app": "a:b"}, "requ',
    "foreign.json": b'{"name": "not a trace", "items": [1, 2]}',
    "future.json": b'{"version": 99, "run": {}, "requests": []}',
    "binary.json": b"\x89PNG\r\n\x1a\n\x00\x00",
}
WHAT_IS_SAID = {
    "missing.json": "No such file",
    "empty.json": "is empty",
    "truncated.json": "truncated",
    "foreign.json": "not a loopscope trace",
    "future.json": "version 99 is not supported",
    "binary.json": "not UTF-8",
}


@pytest.mark.parametrize("name", list(TRACE_FILES))
def test_a_bad_trace_file_is_one_message_naming_it(tmp_path: Path, name: str) -> None:
    content = TRACE_FILES[name]
    if content is not None:
        (tmp_path / name).write_bytes(content)
    said = _one_error(_loopscope("report", name, cwd=tmp_path), TraceError.exit_code)
    assert name in said
    assert WHAT_IS_SAID[name] in " ".join(said.split())


def test_debug_shows_the_traceback_of_a_bad_trace_file(tmp_path: Path) -> None:
    (tmp_path / "binary.json").write_bytes(TRACE_FILES["binary.json"])
    run = _loopscope("--debug", "report", "binary.json", cwd=tmp_path)
    assert run.returncode != 0
    assert "Traceback" in run.stderr


@pytest.mark.parametrize(
    ("app", "said"),
    [
        ("broken_import:app", "this_module_does_not_exist"),
        ("crashing:raises_at_startup", "the database is down"),
        ("crashing:never_ready", "did not answer"),
    ],
)
def test_an_app_that_cannot_be_run_is_one_message_naming_it(app: str, said: str) -> None:
    run = _loopscope(
        "trace", app, "--app-dir", APPS, "--hit", "GET /", "--no-html", "--start-timeout", "5"
    )
    message = _one_error(run, ServerError.exit_code)
    assert app in " ".join(message.split())
    assert said in message


@pytest.mark.parametrize(
    ("route", "how"),
    [("/exit", "exited with code 7"), ("/segv", "was killed by SIGSEGV")],
)
def test_an_app_dying_mid_run_keeps_what_was_measured(tmp_path: Path, route: str, how: str) -> None:
    out = tmp_path / "partial.json"
    run = _loopscope(
        "trace", "crashing:app", "--app-dir", APPS, "--hit", "GET /", "--hit", f"POST {route}",
        "--hit", "GET /", "--json", str(out), "--html", str(tmp_path / "partial.html"),
    )  # fmt: skip
    message = " ".join(_one_error(run, ServerError.exit_code).split())
    assert f"crashing:app {how}" in message
    trace = json.loads(out.read_text())
    assert trace["run"]["partial"] is True
    assert any("cut short" in note for note in trace["run"]["notes"])
    statuses = [r["status"] for r in trace["requests"]]
    assert statuses[0] == 200, "the request answered before the crash is kept"
    assert statuses[1:] == [None, None]
    assert (tmp_path / "partial.html").is_file()


# Three requests that block the loop, then one that awaits long enough for the probe's
# checkpoint thread (every 0.5 s by default) to save them all, whatever the machine's load.
BEFORE_THE_CRASH = ["GET /block", "GET /block", "GET /block", "GET /wait?s=2"]


def _sleep_line() -> str:
    """`crashing.py:<n>`, where the app's `/block` blocks the loop."""
    lines = (Path(APPS) / "crashing.py").read_text().splitlines()
    return f"crashing.py:{next(i for i, t in enumerate(lines, 1) if 'time.sleep(' in t)}"


def _states(request: dict[str, Any]) -> list[str]:
    return [segment["state"] for segment in request["segments"]]


@pytest.mark.parametrize("backend", ["compiled", "python"])
@pytest.mark.parametrize(
    ("route", "how"),
    [
        ("/exit", "exited with code 7"),
        ("/segv", "was killed by SIGSEGV"),
        ("/kill", "was killed by SIGKILL"),
    ],
)
def test_a_crashed_server_s_last_checkpoint_keeps_its_server_side_view(
    tmp_path: Path, route: str, how: str, backend: str
) -> None:
    out, html = tmp_path / "partial.json", tmp_path / "partial.html"
    hits = [arg for hit in [*BEFORE_THE_CRASH, f"POST {route}", "GET /"] for arg in ("--hit", hit)]
    run = _loopscope(
        "trace", "crashing:app", "--app-dir", APPS, *hits, "--no-warmup",
        "--json", str(out), "--html", str(html),
        env={PURE_PYTHON_ENV: "1"} if backend == "python" else {},
    )  # fmt: skip
    assert f"crashing:app {how}" in " ".join(_one_error(run, ServerError.exit_code).split())
    trace = json.loads(out.read_text())
    assert trace["run"]["partial"] is True
    requests = trace["requests"]
    blocked = [r for r in requests if r["path"] == "/block"]
    assert len(blocked) == 3
    for request in blocked:
        assert request["status"] == 200
        assert request["server_start_ns"] is not None, "the server-side view, from the checkpoint"
        assert "loop-blocked" in _states(request)
    blocks = [(b["request_id"], b["where"]) for b in trace["loop_blocks"] if b["kind"] == "code"]
    assert blocks == [(r["id"], _sleep_line()) for r in blocked]
    crashed = next(r for r in requests if r["path"] == route)
    assert crashed["status"] is None and crashed["server_start_ns"] is None
    (worker,) = trace["workers"]
    assert worker["recorded"] is True
    assert worker["checkpoint_ns"] is not None
    assert worker["checkpoint_ns"] > max(r["server_end_ns"] for r in blocked)
    if worker["ended_ns"] is not None:
        assert worker["checkpoint_ns"] < worker["ended_ns"]
    said = " ".join(run.stdout.split())
    assert f"server-side view of worker pid {worker['pid']} is as of its probe's last " in said
    page = " ".join(html.read_text().split())
    assert f"server-side view of worker pid {worker['pid']} is as of its probe" in page


def test_with_two_workers_a_crashed_worker_s_checkpoint_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    hits = ["GET /block"] * 4 + ["GET /wait?s=2", "POST /segv", "GET /wait?s=0.5", "GET /"]
    run = _loopscope(
        "trace", "crashing:app", "--app-dir", APPS, "--workers", "2", "--no-warmup",
        "--allow-errors", "--no-html", "--json", str(out),
        *[arg for hit in hits for arg in ("--hit", hit)],
    )  # fmt: skip
    assert run.returncode in (0, ServerError.exit_code), run.stdout[-2000:] + run.stderr[-2000:]
    trace = json.loads(out.read_text())
    blocked = [r for r in trace["requests"] if r["path"] == "/block"]
    assert all("loop-blocked" in _states(r) for r in blocked), "every worker's view is kept"
    where = {b["request_id"]: b["where"] for b in trace["loop_blocks"] if b["kind"] == "code"}
    assert all(where.get(r["id"]) == _sleep_line() for r in blocked)
    segv = next(r for r in trace["requests"] if r["path"] == "/segv")
    assert segv["status"] is None
    workers = {w["pid"]: w for w in trace["workers"]}
    crashed = workers[blocked[0]["worker"]]
    assert crashed["checkpoint_ns"] is not None, "it wrote no final record: its checkpoint"
    assert crashed["ended_ns"] is not None
    said = " ".join(run.stdout.split())
    assert f"server-side view of worker pid {crashed['pid']} is as of its probe's last" in said


def test_a_clean_run_reads_the_final_records_not_the_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    run = _loopscope(
        "trace", "crashing:app", "--app-dir", APPS, "--hit", "GET /block", "--hit", "GET /wait?s=1",
        "--no-warmup", "--no-html", "--json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (worker,) = json.loads(out.read_text())["workers"]
    assert worker["recorded"] is True
    assert worker["checkpoint_ns"] is None
    assert "checkpoint" not in run.stdout


def test_an_app_dying_in_the_warm_up_is_said_so() -> None:
    run = _loopscope(
        "trace", "crashing:app", "--app-dir", APPS, "--hit", "POST /exit", "--warmup-unsafe",
        "--no-html",
    )  # fmt: skip
    assert "during the warm-up" in _one_error(run, ServerError.exit_code)


@pytest.mark.parametrize("hit", ["FETCH /", "GET", "GET nopath", "POST / {bad json", ""])
def test_a_nonsense_hit_is_a_usage_error(hit: str) -> None:
    run = _loopscope("trace", "crashing:app", "--app-dir", APPS, "--hit", hit, "--no-html")
    assert "Hit" in _one_error(run, UsageError.exit_code)


@pytest.mark.parametrize("path", ["/proc/loopscope.json", "/nonexistent-dir/x.json"])
def test_an_unwritable_output_is_refused_before_the_run(path: str) -> None:
    run = _loopscope(
        "trace", "crashing:never_ready", "--app-dir", APPS, "--hit", "GET /", "--json", path
    )
    # Refused at once: the app (which never becomes ready) is not even started.
    assert path in " ".join(_one_error(run, UsageError.exit_code).split())


def test_every_exit_code_is_documented_in_help() -> None:
    run = _loopscope("--help")
    text = " ".join(run.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in text


BUGGY = """
import sys
from loopscope import cli

@cli.app.command("explode")
def explode() -> None:
    raise RuntimeError("a bug in a command")

sys.argv = ["loopscope", *sys.argv[1:], "explode"]
cli.main()
"""


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_one_line_unless_debug(debug: bool) -> None:
    args = ["--debug"] if debug else []
    run = subprocess.run(
        [sys.executable, "-c", BUGGY, *args], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    if debug:
        assert "Traceback" in run.stderr
    else:
        said = _one_error(run, 1)
        assert "RuntimeError: a bug in a command" in said
        assert "--debug" in said
