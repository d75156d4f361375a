"""The lines `loopscope trace` prints about executors and what the probe could not see."""

from __future__ import annotations

from loopscope.report.words import executor_line, unseen_note
from loopscope.trace.executors import executors
from loopscope.trace.model import Trace


def executor_lines(trace: Trace) -> list[str]:
    """One line per executor (`asyncio.to_thread`, an app's own, aiosqlite's threads), then
    what stayed unseen under uvloop, if anything did."""
    lines = [f"Executor `{u.name}`: {executor_line(u)}." for u in executors(trace)]
    unseen = unseen_note(trace.run)
    if unseen:
        lines.append(unseen)
    return lines
