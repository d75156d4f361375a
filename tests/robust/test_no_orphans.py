"""No server outlives loopscope, however loopscope ends, on a busy machine.

Each case runs the issue's scenario — `loopscope demo --io-ms 3000 --modes async-blocking`,
whose requests block the server's event loop for 3 s each — ends the CLI mid-run with a
signal while a CPU hog runs beside it, and then looks for any process left in the server's
session (the server and every worker it started). `SIGKILL` runs no code of ours: only the
kernel's parent-death signal can take the server down.

`make test` runs each signal once; `make robust` (run by `.ci/run`) runs each ten times in a row
(`LOOPSCOPE_ROBUST_REPEAT=10`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parents[1] / "apps")
REPEAT = int(os.environ.get("LOOPSCOPE_ROBUST_REPEAT", "1"))
# How long a server may take to go after the CLI is gone: the bound.
GONE_WITHIN_S = 10.0
# Ctrl-C or a kill must end the CLI within the interrupt grace (1 s) plus the time a starved
# 2-core machine takes to unwind and exit: generous, but far below a run's natural end (the
# three blocking requests alone take 9 s, then the report).
CLI_EXIT_WITHIN_S = 8.0
HOG = "while True: pass"


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name in parentheses: state, ppid, pgrp, session, ...
    return text.rsplit(")", 1)[1].split()


def _in_session(session: int) -> list[int]:
    """Live (non-zombie) processes whose session is `session`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[3]) == session:
                found.append(int(entry.name))
    return found


def _server_of(cli: int) -> int | None:
    """The server a CLI started: its child running loopscope's target app."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields and int(fields[1]) == cli and b"loopscope.server.target:app" in cmdline:
            return int(entry.name)
    return None


def _wait_for(predicate: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """A busy loop on one of the machine's cores for the length of the test."""
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _end_cli_mid_run(sig: signal.Signals) -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "demo", "--io-ms", "3000",
         "--modes", "async-blocking", "--no-html"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server: int | None = None
    try:
        assert _wait_for(lambda: _server_of(cli.pid) is not None, 60), "no server started"
        server = _server_of(cli.pid)
        assert server is not None
        time.sleep(1.0)  # mid-run: starting, or requests blocking the loop
        assert cli.poll() is None, "the CLI ended before it was signalled"
        cli.send_signal(sig)
        signalled = time.monotonic()
        cli.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    gone = _wait_for(lambda: not _in_session(server), GONE_WITHIN_S)
    left = _in_session(server)
    for pid in left:  # never leave one behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert gone, f"{sig.name}: processes {left} of the server outlived the CLI"
    assert cli.returncode != 0
    if sig != signal.SIGKILL:
        assert took < CLI_EXIT_WITHIN_S, f"{sig.name}: the CLI took {took:.1f} s to stop"


@pytest.mark.slow
@pytest.mark.usefixtures("cpu_hog")
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda sig: sig.name
)
def test_the_demo_ended_mid_run_leaves_no_server_behind(sig: signal.Signals) -> None:
    for _ in range(REPEAT):
        _end_cli_mid_run(sig)


STARTER = """
import sys, time
from loopscope.server import ServerProcess, ServerSettings
server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=sys.argv[1], workers=2))
server.start()
print(server.pid, server.url, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.usefixtures("cpu_hog")
def test_every_worker_of_a_killed_parent_goes_too() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTER, APPS], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    try:
        pid_text, url = parent.stdout.readline().split()
        master = int(pid_text)
        # Both workers up: the master and two workers share the server's session.
        assert _wait_for(lambda: len(_in_session(master)) >= 3, 60), _in_session(master)
        assert httpx.get(url + "/", timeout=10).status_code == 200
        parent.kill()
        parent.wait()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
    gone = _wait_for(lambda: not _in_session(master), GONE_WITHIN_S)
    left = _in_session(master)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert gone, f"processes {left} of the server outlived their parent"


WORKER = """
import multiprocessing, os, sys, time
from loopscope.server.lifeline import die_with_parent

def worker(flag):
    time.sleep(1.0)  # its master is gone by now
    die_with_parent()
    open(flag, "w").close()

if __name__ == "__main__":
    multiprocessing.get_context("spawn").Process(target=worker, args=(sys.argv[1],)).start()
    os._exit(0)  # the master dies at once, without waiting for its worker
"""


def test_a_worker_whose_master_is_already_gone_does_not_serve(tmp_path: Path) -> None:
    # The race `die_with_parent` closes: a worker (spawned, as uvicorn's are) that starts
    # after its master has died must not go on to serve.
    script = tmp_path / "master.py"
    script.write_text(WORKER)
    flag = tmp_path / "served"
    subprocess.run([sys.executable, str(script), str(flag)], check=True, timeout=30)
    time.sleep(4.0)
    assert not flag.exists()


def test_a_server_started_from_a_thread_that_ends_lives_on() -> None:
    # The kernel's parent-death signal follows the thread that forked: a server started from a
    # short-lived thread must not die with that thread.
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS))
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join(timeout=60)
    try:
        assert server.pid is not None
        time.sleep(0.5)
        assert httpx.get(server.url + "/", timeout=10).json()["pid"] == server.pid
    finally:
        server.close()
