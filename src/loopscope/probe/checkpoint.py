"""Checkpoints: the probe's record written while the app runs, so that a crash loses little.

The final record (`probe-<pid>.json`) is written when the app's lifespan shuts down, or at exit;
a process that segfaults, calls `os._exit` or is SIGKILLed (the OOM killer) never gets there.
So a daemon thread of the probe's (`Checkpointer`) writes the record every `period_s` (0.5 s;
`LOOPSCOPE_CHECKPOINT_S`, 0 turns it off) beside it, as `checkpoint-<pid>.json`, marked with the
time it was taken (`ServerRecord.checkpoint_ns`). `loopscope.trace.record_files.read_records`
takes each process's final record where there is one, else its last checkpoint: the final
record always wins.

What a checkpoint costs the app, and how it is bounded:

- Nothing at all while nothing new was recorded: the thread compares a few of the recorder's
  counters and lengths (`_mark`) and sleeps on.
- Collecting holds the GIL for as long as the loop's own thread lets it (Python switches threads
  every 5 ms), so the loop runs slower while a checkpoint is taken, but never stalls for long:
  the record is also encoded one small piece at a time (`_pieces`), not in one `json.dumps`
  call that would hold the GIL for the whole file.
- The time spent taking checkpoints is at most `MAX_SHARE` of the time: after a checkpoint that
  took `t`, the next waits at least `t / MAX_SHARE`. `make bench` measures a checkpoint of a
  record near the 200,000-event cap (`benchmarks/probe_checkpoint.py`).
- It never raises into the app: a checkpoint that fails is counted as the probe's own failure
  (hook `checkpoint`), and a part of the record that fails to build is counted in that
  checkpoint only (see `loopscope.probe.collect.server_record`).

What a checkpoint cannot hold: whatever happened after it was taken, and the loop step running
when it was taken (a step is recorded when it ends).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from loopscope.probe.recorder import Recorder
from loopscope.trace.record import ServerRecord

ENV_CHECKPOINT_S = "LOOPSCOPE_CHECKPOINT_S"
DEFAULT_PERIOD_S = 0.5
MAX_SHARE = 0.1
"""The largest share of the time that taking checkpoints may use."""

_SEPARATORS = (",", ":")


class Recording(Protocol):
    """What a `Checkpointer` needs of the probe: its recorder and a way to collect it."""

    @property
    def recorder(self) -> Recorder: ...

    def collect(self, checkpoint_ns: int | None = None) -> ServerRecord: ...


def period_from_env() -> float:
    """The checkpoint period in seconds from `LOOPSCOPE_CHECKPOINT_S` (0: no checkpoints)."""
    text = os.environ.get(ENV_CHECKPOINT_S, "")
    try:
        period = float(text) if text.strip() else DEFAULT_PERIOD_S
    except ValueError:
        return DEFAULT_PERIOD_S
    return period if period > 0 else 0.0


def _mark(rec: Recorder) -> tuple[int, ...]:
    """Numbers that change whenever the recorder stores (or fails to store) anything."""
    return (
        rec.used,
        rec.dropped,
        rec.unrecorded,
        rec.errors,
        rec.serial,
        len(rec.steps.data),
        len(rec.finished.numbers),
        len(rec.live),
        len(rec.watch_blocks),
        len(rec.pool),
        len(rec.gc_pauses),
    )


def _pieces(value: Any, depth: int = 3) -> Iterator[str]:
    """The JSON of `value` (as `json.dumps` with compact separators writes it), in pieces: the
    lists and objects of its first `depth` levels are taken apart, so that no single call into
    the C encoder holds the GIL for the whole record."""
    if depth and isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield f"{',' if i else ''}{json.dumps(str(key))}:"
            yield from _pieces(item, depth - 1)
        yield "}"
    elif depth and isinstance(value, list):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _pieces(item, depth - 1)
        yield "]"
    else:
        yield json.dumps(value, separators=_SEPARATORS)


def write_checkpoint(record: ServerRecord, path: Path) -> None:
    """Write `record` to `path` atomically (beside it, then renamed), a piece at a time."""
    partial = path.with_name(f".{path.name}.part")
    try:
        with partial.open("w", encoding="utf-8") as out:
            out.writelines(_pieces(dataclasses.asdict(record)))
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class Checkpointer:
    """Writes `probe`'s record to `path` every `period_s` while it changes, from a daemon thread
    (see the module). `stop` before writing the final record; `discard` once it is written."""

    def __init__(self, probe: Recording, path: str | Path, period_s: float) -> None:
        self._probe = probe
        self.path = Path(path)
        self.period_s = period_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, ...] | None = None
        self.written = 0  # checkpoints written
        self.last_cost_ns = 0  # what the last one took, collecting and writing
        self.last_taken_ns: int | None = None  # its `checkpoint_ns`

    def start(self) -> None:
        """Start taking checkpoints (not at all when `period_s` is 0)."""
        if self.period_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="loopscope-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait_s = self.period_s
        while not self._stopped.wait(wait_s):
            self.take()
            # A checkpoint that took long is followed by a longer wait (`MAX_SHARE`).
            wait_s = max(self.period_s, self.last_cost_ns / 1e9 / MAX_SHARE)

    def take(self) -> bool:
        """Write a checkpoint now if anything was recorded since the last one; whether one was
        written. Never raises: a failure is counted as the probe's own (hook `checkpoint`)."""
        recorder = self._probe.recorder
        try:
            mark = _mark(recorder)
            if mark == self._last:
                return False
            started = time.monotonic_ns()
            record = self._probe.collect(checkpoint_ns=started)
            if self._stopped.is_set():
                return False  # the final record is on its way: it must not be overtaken
            write_checkpoint(record, self.path)
            self._last = mark
            self.written += 1
            self.last_taken_ns = started
            self.last_cost_ns = time.monotonic_ns() - started
            return True
        except Exception as exc:
            recorder.fail("checkpoint", exc)
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Take no more checkpoints; wait (up to `timeout_s`) for one being taken."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def discard(self) -> None:
        """Remove the checkpoint file (once the final record is written, it says more)."""
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
