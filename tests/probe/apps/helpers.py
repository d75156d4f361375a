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
    """Spin the CPU for `seconds` of wall time; returns the iteration count."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:  # mark: busy-loop
        spins += 1
    return spins
