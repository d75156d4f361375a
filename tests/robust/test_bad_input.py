"""Bad input to loopscope: one clear message naming the file or app, the documented exit code,
no traceback of ours without `--debug`, and whatever was measured before a crash kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.errors import EXIT_CODES, ServerError, TraceError, UsageError

APPS = str(Path(__file__).parents[1] / "apps")


def _loopscope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
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
