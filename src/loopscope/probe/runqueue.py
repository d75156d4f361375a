"""A worker thread's run-queue delay: how long it was ready to run while the OS ran others.

Linux keeps it per thread in `/proc/self/task/<tid>/schedstat` (second field, ns). A worker
thread reads its own at a trip's start and end, so a `def` route's wall time splits three ways:
CPU, waiting (I/O, the GIL) and waiting for a core. Opening the file each time costs 35-70 µs
on this machine; each thread keeps its file open and re-reads it with `os.pread`, 3-6 µs (about
a `time.thread_time_ns()` call), so two reads per trip stay small beside a pool trip's own cost.
The file is closed when its thread ends (the thread-local holder is collected then). Where there
is no such file (not Linux, no schedstats), the reader gives `None` at once from then on.
"""

from __future__ import annotations

import contextlib
import os
import threading

_PATH = "/proc/thread-self/schedstat"


def _delay(fd: int) -> int:
    """The run-queue delay (ns) in the open schedstat file `fd`: its second field."""
    return int(os.pread(fd, 128, 0).split()[1])


class _Handle:
    """One thread's open schedstat file, closed with the thread's locals."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class RunQueueClock:
    """`read()`: the calling thread's cumulative run-queue delay in ns, or `None`."""

    def __init__(self, path: str = _PATH) -> None:
        self._path = path
        self._local = threading.local()
        self._missing = False

    def read(self) -> int | None:
        """The calling thread's run-queue delay so far (ns); `None` where it cannot be read."""
        if self._missing:
            return None
        handle: _Handle | None = getattr(self._local, "handle", None)
        try:
            if handle is None:
                # Opened by the thread itself: `thread-self` names the caller.
                handle = _Handle(os.open(self._path, os.O_RDONLY | os.O_CLOEXEC))
                self._local.handle = handle
            return _delay(handle.fd)
        except FileNotFoundError:
            self._missing = True
            return None
        except (OSError, ValueError, IndexError):
            return None


RUN_QUEUE = RunQueueClock()
"""The one reader every probe hook shares (one open file per worker thread)."""


class ProcessRunQueue:
    """`read()`: the run-queue delay of every thread of this process so far, summed (ns), or
    `None` where it cannot be read.

    Read by the watchdog while the loop is stuck: a loop thread that waits for a library's own
    threads on a busy machine sees them compute *and* wait for a core, and both are their work,
    not I/O. Each thread's file stays open (by thread id) and is re-read with `os.pread`; the
    list of threads is read anew every time, so that threads that came or went are followed.
    Only the watchdog thread calls it (not thread-safe).
    """

    def __init__(self, tasks: str = "/proc/self/task") -> None:
        self._tasks = tasks
        self._files: dict[str, int] = {}

    def read(self) -> int | None:
        """The process's summed run-queue delay so far (ns); `None` where it cannot be read."""
        return self.thread_and_total(None)[1]

    def thread_and_total(self, thread: int | None) -> tuple[int | None, int | None]:
        """Thread `thread`'s own run-queue delay (by native id) and every thread's summed, read
        in one pass (ns); `None` for either where it cannot be read."""
        try:
            tids = os.listdir(self._tasks)
        except OSError:
            return None, None
        files = self._files
        for gone in files.keys() - set(tids):
            with contextlib.suppress(OSError):
                os.close(files.pop(gone))
        readings = {tid: self._read_one(tid) for tid in tids}
        found = [value for value in readings.values() if value is not None]
        # No thread read (no schedstat here) is no reading, not a wait of 0.
        own = readings.get(str(thread)) if thread is not None else None
        return own, (sum(found) if found else None)

    def _read_one(self, tid: str) -> int | None:
        """One thread's run-queue delay; `None` where it ended meanwhile or cannot be read. A
        kept file that fails (its thread ended, and a new one took its id) is opened anew."""
        for fresh in (False, True):
            fd = None if fresh else self._files.get(tid)
            try:
                if fd is None:
                    fd = self._files[tid] = os.open(
                        f"{self._tasks}/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC
                    )
                return _delay(fd)
            except FileNotFoundError:  # the thread ended meanwhile
                return None
            except OSError:
                with contextlib.suppress(OSError):
                    os.close(self._files.pop(tid))
            except (ValueError, IndexError):
                return None
        return None

    def close(self) -> None:
        """Close every file kept open."""
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
