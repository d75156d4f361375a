"""`loopscope demo` whose server is killed mid-run (an OOM killer, a `kill -9`): what was
measured until then is written, marked partial, and the run ends with one clear error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopscope.errors import ServerError


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


@pytest.mark.slow
def test_a_demo_whose_server_is_killed_keeps_what_it_measured(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    cli = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "demo", "--modes", "async-blocking", "--io-ms",
         "1500", "--no-warmup", "--json", str(out), "--no-html"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (servers := _children(cli.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert servers, "the demo never started its server"
        # The loop serves one 1.5 s request after another: at 3.5 s in, one or two have
        # answered and the last has not.
        time.sleep(3.5)
        # Children read again: one found first may have been a short-lived helper, gone now.
        for server in _children(cli.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == ServerError.exit_code, stdout + stderr
    assert "killed by SIGKILL" in stderr and "Traceback" not in stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["mode"] == "async-blocking" and run["run"]["partial"] is True
    statuses = [r["status"] for r in run["requests"]]
    assert statuses.count(200) >= 1 and None in statuses, statuses
    assert "async-blocking" in stdout
