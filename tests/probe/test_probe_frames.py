"""Naming the line a thread is stuck on: user code only, relative paths, short stacks."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio

import loopscope.probe
from loopscope.probe.frames import MAX_STACK, FrameNamer

HERE = Path(__file__).parent


def test_library_and_probe_files_are_not_user_code() -> None:
    namer = FrameNamer(app_root=str(HERE))
    assert namer.display_path(asyncio.__file__) is None
    assert namer.display_path(anyio.__file__) is None
    assert namer.display_path(loopscope.probe.__file__) is None
    assert namer.display_path("<frozen importlib._bootstrap>") is None
    assert namer.display_path(__file__) == "test_probe_frames.py"


def test_paths_outside_the_app_root_are_relative_to_the_working_directory() -> None:
    namer = FrameNamer(app_root="/nonexistent-app-root")
    shown = namer.display_path(__file__)
    assert shown is not None
    assert Path(shown).resolve() == Path(__file__).resolve()


def _recurse(depth: int, namer: FrameNamer) -> tuple[str | None, list[str], str | None]:
    if depth:
        return _recurse(depth - 1, namer)
    return namer.describe(sys._getframe())


def test_the_stack_is_short_and_innermost_last() -> None:
    namer = FrameNamer(app_root=str(HERE))
    where, stack, inner = _recurse(20, namer)
    assert inner is None  # no installed library below the user's line
    assert where is not None and where.startswith("test_probe_frames.py:")
    assert len(stack) == MAX_STACK
    assert stack[-1] == f"{where} in _recurse"


def _nap(started: threading.Event, release: threading.Event) -> None:
    started.set()
    release.wait(5)  # mark: nap


def test_another_threads_current_line_is_found() -> None:
    namer = FrameNamer(app_root=str(HERE))
    started, release = threading.Event(), threading.Event()
    napper = threading.Thread(target=_nap, args=(started, release))
    napper.start()
    try:
        started.wait(5)
        time.sleep(0.01)
        assert napper.ident is not None
        where, stack, _ = namer.sample(napper.ident)
    finally:
        release.set()
        napper.join()
    source = Path(__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if text.endswith("# mark: nap"))
    assert where == f"test_probe_frames.py:{line}"
    assert stack[-1].endswith(" in wait")  # the library call the user line is in


def test_a_snapshot_is_taken_without_touching_the_disk(monkeypatch: Any) -> None:
    """Naming frames resolves their files, and every system call lets go of the GIL: against a
    CPU-bound loop thread the watchdog then waits a switch interval to get it back, each time.
    The snapshot it checks the stalled step against must be of one moment, so it reads plain
    values only; naming it afterwards gives what describing the live frame gives."""
    fresh = FrameNamer(app_root=str(HERE))

    def no_disk(path: Any) -> str:
        raise AssertionError(f"resolved {path} while taking a snapshot")

    monkeypatch.setattr("os.path.realpath", no_disk)
    taken = fresh.snapshot(threading.get_ident())  # mark: snapshot
    monkeypatch.undo()
    assert taken[0][2] == "snapshot"  # innermost first: the snapshot's own frame
    assert all(isinstance(line, int) for _, line, _ in taken)
    where, stack, inner = fresh.describe_snapshot(taken)
    source = Path(__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if text.endswith("# mark: snapshot"))
    assert where == f"test_probe_frames.py:{line}"
    assert stack[-1] == f"{where} in test_a_snapshot_is_taken_without_touching_the_disk"
    assert inner is None
