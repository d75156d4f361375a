"""The process's threads' wait for a core, summed (`ProcessRunQueue`), and what it decides: a loop
waiting for a library's own threads on a busy machine is waiting for their CPU work, not I/O."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.probe.runqueue import ProcessRunQueue
from loopscope.trace.analysis import group_blocks
from loopscope.trace.model import LoopBlock

needs_schedstat = pytest.mark.skipif(
    not os.path.exists("/proc/self/task"), reason="no Linux per-thread schedstat here"
)
MS = 1_000_000


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@needs_schedstat
def test_the_sum_counts_a_thread_of_the_process_that_waits_for_a_core(
    beside_a_hog: Callable[[Callable[[], tuple[int, int]]], tuple[int, int]],
) -> None:
    # A thread of this process shares one core with a spinning process: it waits for the core
    # about half the time (more on a loaded machine), and the process's sum sees that wait.
    reader = ProcessRunQueue()

    def work() -> tuple[int, int]:
        start, wall = reader.read(), time.monotonic_ns()
        _spin(0.2)
        end, wall_end = reader.read(), time.monotonic_ns()
        assert start is not None and end is not None
        return end - start, wall_end - wall

    runnable, wall = beside_a_hog(work)
    reader.close()
    assert runnable >= 0.25 * wall, (runnable, wall)


@needs_schedstat
def test_threads_that_come_and_go_are_followed() -> None:
    reader = ProcessRunQueue()
    assert reader.read() is not None
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    assert reader.read() is not None and str(thread.native_id) in reader._files
    stop.set()
    thread.join()
    # `join` returns once the thread's Python code is done; the OS thread ends a moment later.
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/self/task/{thread.native_id}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.read() is not None and str(thread.native_id) not in reader._files
    reader.close()
    assert ProcessRunQueue("/nonexistent").read() is None


def _block(process_cpu_ms: int, process_runnable_ms: int | None) -> LoopBlock:
    # The loop thread waited 100 ms (1 ms of its own CPU) while other threads worked.
    return LoopBlock(
        0,
        100 * MS,
        1 * MS,
        "r1",
        "app.py:9",
        process_cpu_ns=process_cpu_ms * MS,
        process_runnable_ns=None if process_runnable_ms is None else process_runnable_ms * MS,
    )


def test_threads_that_computed_and_queued_for_a_core_are_work_not_io_wait() -> None:
    # Quiet machine: the library's threads computed for most of the block.
    assert group_blocks("app.py:9", [_block(90, 0)], {}).waits_on_threads
    # Busy machine: they computed for 40 ms and waited 50 ms for a core: still their work.
    assert group_blocks("app.py:9", [_block(40, 50)], {}).waits_on_threads
    # Without the run-queue reading, 40 ms of CPU in 100 is not enough to tell.
    assert not group_blocks("app.py:9", [_block(40, None)], {}).waits_on_threads
    # Nothing computed or queued: the loop waited on I/O.
    assert not group_blocks("app.py:9", [_block(1, 2)], {}).waits_on_threads


def test_no_thread_read_is_no_reading_and_threads_are_summed(tmp_path: Path) -> None:
    tasks = tmp_path / "task"
    (tasks / "101").mkdir(parents=True)
    (tasks / "102").mkdir()
    assert ProcessRunQueue(str(tasks)).read() is None  # no schedstat here: not a wait of 0
    (tasks / "101" / "schedstat").write_text("5 700 3\n")
    (tasks / "102" / "schedstat").write_text("8 300 1\n")
    reader = ProcessRunQueue(str(tasks))
    assert reader.read() == 1000
    (tasks / "102" / "schedstat").unlink()
    (tasks / "102").rmdir()  # that thread ended: its file is let go
    assert reader.read() == 700 and set(reader._files) == {"101"}
    reader.close()
