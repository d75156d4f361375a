"""The storage layer: a synchronous archive read that blocks (the mistake to catch)."""

from __future__ import annotations

import time


def read_archive(name: str) -> dict[str, str]:
    return _fetch(name)


def _fetch(name: str) -> dict[str, str]:
    time.sleep(0.12)  # mark: archive-wait
    return {"name": name}


def render(rows: int) -> int:
    """CPU-bound page rendering."""
    return sum(i * i % 7 for i in range(rows))  # mark: render-loop


def export(name: str) -> str:
    """A slow export, meant to run in a worker thread."""
    time.sleep(0.12)
    return name.upper()
