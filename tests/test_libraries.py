"""Blocks inside installed libraries: named at the library's lines, and CPU done by a library's
own threads is not called waiting on I/O.

`tests/packages/hashroute` is a real installed package (the Makefile installs it into the venv's
site-packages): an `async def` route it provides hashes a password with argon2, whose lanes run in
argon2's own threads while the loop thread waits for them, as fastapi-users' register does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.report.words import verdict_text
from loopscope.trace import Trace, load_trace
from loopscope.trace.verdicts import verdicts

APPS = Path(__file__).parent / "apps"
PACKAGE = Path(__file__).parent / "packages" / "hashroute" / "hashroute"


def _line(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, str]:
    pytest.importorskip("hashroute", reason="make setup installs tests/packages/hashroute")
    out = tmp_path_factory.mktemp("lib") / "trace.json"
    result = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", "libroute:app", "--app-dir", str(APPS),
         "--hit", 'POST /auth/register {"email": "a@b.c", "password": "pw"}',
         "--users", "2", "--json", str(out), "--no-html"],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return load_trace(out), result.stdout


def test_a_block_in_a_route_a_library_provides_names_the_library_and_the_line_below(
    registered: tuple[Trace, str],
) -> None:
    trace, stdout = registered
    hashing = f"hashroute/password.py:{_line(PACKAGE / 'password.py', 'return _hasher.hash')}"
    assert len(trace.loop_blocks) == 2  # one register per user
    for block in trace.loop_blocks:
        assert block.where == hashing
        assert block.inner is not None and block.inner.startswith("argon2/")
    assert f"{hashing} → argon2/" in stdout
    assert "not sampled" not in stdout


def test_cpu_in_a_librarys_own_threads_is_not_called_io_wait(
    registered: tuple[Trace, str],
) -> None:
    trace, stdout = registered
    (verdict,) = verdicts(trace)
    assert verdict.kind == "cpu-in-threads"
    assert "other threads of the process computed" in verdict_text(verdict)
    assert "I/O wait" not in stdout
    for block in trace.loop_blocks:
        assert block.cpu_ns is not None and block.process_cpu_ns is not None
        assert block.process_cpu_ns > 2 * block.cpu_ns
