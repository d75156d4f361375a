"""Helpers the test apps call: the blocking ones stand for a user's own slow code.

Lines the tests look for carry a `# mark: <name>` comment (see `probe_servers.marked_line`).
"""

from __future__ import annotations

import time


def load_profile(seconds: float) -> str:
    """A helper that looks harmless; the block is one call further down."""
    return _read_profile(seconds)


def _read_profile(seconds: float) -> str:
    time.sleep(seconds)  # mark: deep-sleep
    return "profile"


def burn_cpu(seconds: float) -> int:
    """Spin until this thread has used `seconds` of CPU; returns the iteration count.

    Counting CPU time, not wall time, keeps the work the same on a busy test machine.
    """
    deadline = time.thread_time() + seconds
    spins = 0
    while time.thread_time() < deadline:  # mark: busy-loop
        spins += 1
    return spins
