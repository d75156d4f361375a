"""Issue 10, "right on real apps": `loopscope trace` as a new user runs it, through the real CLI
against a real uvicorn, on apps that fail, change state, start slowly or are interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"


def loopscope(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **(env or {})},
    )


def trace(app: str, *args: str) -> subprocess.CompletedProcess[str]:
    return loopscope("trace", app, "--app-dir", str(APPS), *args)


@pytest.fixture(scope="module")
def failing(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], str]:
    html = tmp_path_factory.mktemp("failing") / "report.html"
    result = trace(
        "failing:app", "--users", "3", "--rounds", "3", "--html", str(html),
        "--hit", "GET /boom", "--hit", 'POST /echo {"a": 1}',
    )  # fmt: skip
    return result, html.read_text()


def _row(stdout: str, route: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(f"│ {route} "))


def test_a_healthy_post_after_a_raising_handler_is_reported_healthy(
    failing: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    result, _ = failing
    assert "200×9" in _row(result.stdout, "POST /echo")
    assert "500×9" in _row(result.stdout, "GET /boom")
    assert "client view only" not in result.stdout


def test_a_raising_handler_is_shown_with_its_exception_and_line(
    failing: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    result, _ = failing
    assert "Failed requests" in result.stdout
    assert "RuntimeError: card declined for 42 at failing.py:17" in result.stdout
    assert "FAILED 9 of 9 (500×9)" in result.stdout
    assert "9 of 18 requests failed" in result.stdout


def test_failed_requests_make_the_command_exit_1_with_one_line(
    failing: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    result, _ = failing
    assert result.returncode == 1
    assert "pass --allow-errors" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_html_report_warns_of_failures_and_shows_each_requests_status(
    failing: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    _, html = failing
    assert 'class="failures" role="alert"' in html
    assert "GET /boom 500×9: RuntimeError: card declined for 42 at failing.py:17" in html
    assert html.count('data-status="500"') >= 9
    assert 'data-status="200"' in html
    assert ">R1 500 GET /boom<" in html


def test_allow_errors_keeps_the_report_and_exits_0() -> None:
    result = trace("failing:app", "--no-html", "--allow-errors", "--hit", "GET /boom")
    assert result.returncode == 0, result.stderr
    assert "RuntimeError: card declined for 42" in result.stdout


def test_a_state_changing_post_is_not_warmed_up_so_its_real_work_is_measured() -> None:
    register = 'POST /auth/register {"username": "ann", "password": "pw"}'
    args = ("--users", "3", "--no-html", "--hit", register, "--hit", "GET /users/count")
    result = trace("accounts:app", *args)
    assert result.returncode == 0, result.stderr
    assert "201×1, 400×2" in _row(result.stdout, "POST /auth/register")
    # CPU-bound on a quiet machine; on a busy one the split may tip, the line may not.
    assert "at accounts.py:28 (1 time," in result.stdout
    assert "Warmed up (called once before the measurement, not shown): GET /users/count;" in (
        result.stdout.replace("\n", " ")
    )
    assert "Not warmed up, as they may change the app's state: POST /auth/register" in (
        result.stdout
    )
    # Opting in replays the register: every measured one is then a cheap 400.
    unsafe = trace("accounts:app", *args, "--warmup-unsafe")
    assert "400×3" in _row(unsafe.stdout, "POST /auth/register")
    assert "accounts.py:28" not in unsafe.stdout


def test_an_unwritable_output_path_is_refused_before_the_run(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "report.html"
    started = time.monotonic()
    result = trace("slow:app", "--hit", "GET /slow", "--html", str(missing))
    assert result.returncode == 2
    assert f"--html {missing}: the directory {missing.parent} does not exist." in result.stderr
    # Refused before the server started: /slow would have taken a minute.
    assert time.monotonic() - started < 30
    result = trace("slow:app", "--hit", "GET /slow", "--no-html", "--json", str(tmp_path))
    assert result.returncode == 2
    assert "is a directory" in result.stderr


def test_the_start_up_limit_can_be_set() -> None:
    result = loopscope(
        "trace", "slow:app", "--app-dir", str(APPS), "--hit", "GET /slow", "--no-html",
        "--start-timeout", "0.5", env={"SLOW_START_S": "5"},
    )  # fmt: skip
    assert result.returncode == 3
    assert "did not answer on 127.0.0.1 within" in result.stderr
    assert "within 0.5 s" in result.stderr


def test_factory_on_a_plain_app_says_to_drop_it() -> None:
    result = trace("failing:app", "--factory", "--no-html", "--hit", "GET /ok")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: failing:app is not a factory; drop --factory."
    accounts = trace("accounts:make_app", "--factory", "--no-html", "--hit", "GET /users/count")
    assert accounts.returncode == 0, accounts.stderr


def _servers_marked(mark: str) -> list[int]:
    """Pids of processes whose environment carries `mark` (the server inherits ours)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"LOOPSCOPE_TEST_MARK={mark}".encode() in environ.split(b"\0") and (
            b"LOOPSCOPE_APP=slow:app" in environ.split(b"\0")
        ):
            pids.append(int(entry.name))
    return pids


def test_ctrl_c_says_interrupted_and_leaves_no_server() -> None:
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", "slow:app", "--app-dir", str(APPS),
         "--no-html", "--hit", "GET /slow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "LOOPSCOPE_TEST_MARK": mark},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _servers_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        servers = _servers_marked(mark)
        assert servers, "the server never started"
        time.sleep(1.0)  # well inside the minute /slow takes to answer
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "interrupted; server stopped" in stderr
    assert "Traceback" not in stderr
    assert not [pid for pid in servers if os.path.exists(f"/proc/{pid}")]


def test_a_report_that_cannot_be_written_after_the_run_keeps_the_summary(tmp_path: Path) -> None:
    # A dangling link passes the check before the run and fails only when written.
    html = tmp_path / "report.html"
    html.symlink_to(tmp_path / "gone" / "report.html")
    result = trace("failing:app", "--hit", "GET /ok", "--html", str(html))
    assert result.returncode == 6
    assert "Cannot write the report to" in result.stderr
    assert "200×1" in _row(result.stdout, "GET /ok")
    assert "Verdicts" in result.stdout
