"""Samples the server from outside while the load runs: its accept queue and its workers.

One thread in loopscope's own process (never in the server, which must not pay for it) reads
the listening socket's accept queue every `period_ms` (see `accept_queue`) and, less often,
checks which of the server's worker processes are alive, so that a worker that dies and is
replaced shows when it went. Every reading is stamped with `time.monotonic_ns()`, the clock of
the client's and the probe's stamps. Only changes of the queue's depth are kept (plus the first
and the last reading), which bounds memory on long runs while keeping the step function exact
to within one period.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from loopscope.measure.accept_queue import AcceptQueueReader, AcceptQueueUnavailable
from loopscope.trace.model import QueueSample, WorkerLife

DEFAULT_PERIOD_MS = 2.0
"""The accept queue's sampling period: a connection that waits a few ms is seen; a reading
takes ~15 µs of CPU and the sampler about 3% of one core in all, thread wake-ups included
(`benchmarks/accept_queue_cost.py`)."""
WORKER_CHECK_MS = 20.0
"""How often the worker processes are checked: a restart is placed to within this."""
MAX_SAMPLES = 200_000
"""The most queue samples kept (changes only); past it the sampler stops adding."""


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a worker that died but whose parent
    has not reaped it yet is gone for our purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


class ServerSampler:
    """Samples `host:port`'s accept queue and `lives()`'s processes in a background thread.

    ```
    sampler = ServerSampler("127.0.0.1", port, server.worker_lives)
    sampler.start(); ...; sampler.stop()
    sampler.queue, sampler.ended   # QueueSamples, and pid → when it was seen gone
    ```
    A process already gone at the first check (it died before sampling began) is in
    `gone_before`, not in `ended`.
    `unavailable` says why the queue could not be read (the workers are still checked);
    `period_ms=None` checks the workers only.
    """

    def __init__(
        self,
        host: str,
        port: int,
        lives: Callable[[], list[WorkerLife]],
        period_ms: float | None = DEFAULT_PERIOD_MS,
    ) -> None:
        self.host = host
        self.port = port
        self.period_ms = period_ms
        self.queue: list[QueueSample] = []
        self.ended: dict[int, int] = {}
        self.gone_before: set[int] = set()
        self.unavailable: str | None = None
        self._lives = lives
        self._checked = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopscope-sampler", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (its last reading is kept)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        reader: AcceptQueueReader | None = None
        if self.period_ms is not None:
            try:
                reader = AcceptQueueReader(self.host, self.port)
            except AcceptQueueUnavailable as exc:
                self.unavailable = str(exc)
        period_ms = self.period_ms or WORKER_CHECK_MS
        period_s = period_ms / 1000
        check_every = max(1, round(WORKER_CHECK_MS / period_ms))
        known: set[int] = set()
        tick = 0
        try:
            while True:
                stopping = self._stop.is_set()
                if reader is not None:
                    reader = self._read_queue(reader, last=stopping)
                if tick % check_every == 0 or stopping:
                    self._check_workers(known)
                if stopping:
                    return
                tick += 1
                self._stop.wait(period_s)
        finally:
            if reader is not None:
                reader.close()

    def _read_queue(self, reader: AcceptQueueReader, last: bool) -> AcceptQueueReader | None:
        try:
            reading = reader.read()
        except AcceptQueueUnavailable as exc:
            self.unavailable = str(exc)
            reader.close()
            return None
        now = time.monotonic_ns()
        sample = QueueSample(now, reading.depth, reading.backlog)
        queue = self.queue
        changed = not queue or last or queue[-1].depth != sample.depth
        if changed and len(queue) < MAX_SAMPLES:
            queue.append(sample)
        return reader

    def _check_workers(self, known: set[int]) -> None:
        with contextlib.suppress(OSError):
            known.update(life.pid for life in self._lives())
        now = time.monotonic_ns()
        first = not self._checked
        self._checked = True
        for pid in known - self.ended.keys() - self.gone_before:
            if not is_alive(pid):
                if first:
                    self.gone_before.add(pid)
                else:
                    self.ended[pid] = now
