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
            return int(os.pread(handle.fd, 128, 0).split()[1])
        except FileNotFoundError:
            self._missing = True
            return None
        except (OSError, ValueError, IndexError):
            return None


RUN_QUEUE = RunQueueClock()
"""The one reader every probe hook shares (one open file per worker thread)."""
