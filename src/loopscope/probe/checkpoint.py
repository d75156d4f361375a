"""Checkpoints: what the probe recorded, saved while the app runs, so that a crash loses little.

The final record (`probe-<pid>.json`) is written when the app's lifespan shuts down, or at exit;
a process that segfaults, calls `os._exit` or is SIGKILLed (the OOM killer) never gets there.
So a daemon thread of the probe's (`Checkpointer`) saves the recorder's contents every
`period_s` (0.5 s; `LOOPSCOPE_CHECKPOINT_S`, 0 turns it off) beside it, as
`checkpoint-<pid>.bin`. After a crash, `loopscope.trace.record_files.read_records` turns the
last checkpoint into the process's `ServerRecord` (`read_checkpoint`), marked with the time it
was taken (`ServerRecord.checkpoint_ns`); where the final record was written, it wins.

A checkpoint is the recorder's raw contents, not a `ServerRecord`: building the record
(segments, blocks, lanes) and its JSON takes seconds of the GIL near the event cap, while saving
the raw contents takes milliseconds. The packed logs of steps and finished requests, most of
the bytes, are only ever appended to: each checkpoint appends what is new of them to a side file
each (`checkpoint-<pid>.steps`, `.numbers`, `.texts`), then writes the rest, pickled, with how
much of each side file counts (`RecorderSnapshot`), to a temporary file renamed into place: a
crash at any moment leaves the previous checkpoint whole (but while a side file is written anew,
after a failed write, when a crash leaves none). The record is built by the CLI, from
the last checkpoint only, and only after a crash. The cost to the app:

- nothing while nothing new was stored: the thread compares a few of the recorder's lengths
  and counters (`_mark`; events merely dropped past the cap are no news) and sleeps on;
- one checkpoint of a record near the 200,000-event cap: measured by
  `benchmarks/probe_checkpoint.py` (`make bench`), see `docs/probe.md`;
- at most `MAX_SHARE` of the time: after a checkpoint that took `t`, the next waits at least
  `t / MAX_SHARE`;
- never an exception in the app: a checkpoint that fails is counted as the probe's own
  failure (hook `checkpoint`) and tried again at the next period.

A checkpoint cannot hold what happened after it was taken, nor the loop step running then (a
step is recorded when it ends). The file is pickled: it is written and read by the same
loopscope, in the private directory (mode 0700) the CLI made for the server's records.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from loopscope.probe.collect import server_record
from loopscope.probe.recorder import GcPause, Recorder, StackSamples, live_row
from loopscope.trace.model import LoopBlock, PoolCall, PoolSample, ProbeFailure
from loopscope.trace.record import ServerRecord

ENV_CHECKPOINT_S = "LOOPSCOPE_CHECKPOINT_S"
DEFAULT_PERIOD_S = 0.5
MAX_SHARE = 0.05
"""The largest share of the time that taking checkpoints may use."""

PACKED = ("steps", "numbers", "texts")
"""The recorder's packed logs (`steps.data`, `finished.numbers`, `finished.texts`): only ever
appended to, so each checkpoint appends what is new of them to a side file of its own."""

LiveRequest = tuple[str, str, str, int, int, int]
"""A request running when the checkpoint was taken: `(request_id, method, path, start_ns,
first_step_ns, serial)`."""


class Recording(Protocol):
    """What a `Checkpointer` reads of the probe (`loopscope.probe.Probe` has it all)."""

    @property
    def recorder(self) -> Recorder: ...
    @property
    def loop(self) -> str: ...
    @property
    def precise(self) -> bool: ...
    @property
    def task_steps(self) -> bool: ...
    @property
    def loops_observed(self) -> int: ...
    @property
    def unobserved_loops(self) -> int: ...

    block_ms: float


@dataclass(slots=True)
class RecorderSnapshot:
    """A recorder's contents at `taken_ns`, with what `server_record` needs of the probe; the
    packed logs are in side files (see `Checkpointer`), `packed` says how much of each."""

    taken_ns: int
    pid: int
    loop: str
    precise: bool
    task_steps: bool
    block_ms: float
    loops: int
    unobserved_loops: int
    packed: tuple[int, int, int]  # lengths of the packed logs (`PACKED`) in their side files
    serial: int
    live: list[LiveRequest]
    late: dict[str, int]
    pool_hops: dict[str, int]
    pool: list[PoolCall]
    pool_samples: list[PoolSample]
    gc_pauses: list[GcPause]
    samples: dict[int, StackSamples]
    watch_blocks: list[LoopBlock]
    dropped: int
    unrecorded: int
    errors: int
    failures: list[ProbeFailure] = field(default_factory=list)


def snapshot(probe: Recording, taken_ns: int) -> RecorderSnapshot:
    """`probe`'s recorder as it is now, copied: the hooks may go on appending meanwhile."""
    rec = probe.recorder
    # The numbers before the texts: a request's texts are stored before its numbers.
    numbers = len(rec.finished.numbers)
    texts = len(rec.finished.texts)
    live: list[LiveRequest] = []
    for request_id, entry in list(rec.live.items()):
        method, path, start, first_step, serial = live_row(entry)
        live.append(
            (
                request_id,
                method if isinstance(method, str) else "",
                path if isinstance(path, str) else "",
                start,
                first_step,
                serial,
            )
        )
    return RecorderSnapshot(
        taken_ns=taken_ns,
        pid=os.getpid(),
        loop=probe.loop,
        precise=probe.precise,
        task_steps=probe.task_steps,
        block_ms=probe.block_ms,
        loops=probe.loops_observed,
        unobserved_loops=probe.unobserved_loops,
        packed=(len(rec.steps.data), numbers, texts),
        serial=rec.serial,
        live=live,
        late=dict(rec.late),
        pool_hops=dict(rec.pool_hops),
        pool=list(rec.pool),
        pool_samples=list(rec.pool_samples),
        gc_pauses=list(rec.gc_pauses),
        samples=dict(rec.samples),
        watch_blocks=list(rec.watch_blocks),
        dropped=rec.dropped,
        unrecorded=rec.unrecorded,
        errors=rec.errors,
        failures=rec.failure_list(),
    )


class _LiveEntry:
    """A running request as `Recorder.live` holds it (only its `row` is read)."""

    __slots__ = ("row",)

    def __init__(self, row: tuple[str, str, int, int, int]) -> None:
        self.row = row


def restore(shot: RecorderSnapshot, packed: tuple[bytes, bytes, bytes]) -> ServerRecord:
    """The `ServerRecord` the probe would have collected when `shot` was taken, with the
    packed logs `packed` (`PACKED`'s, each cut to its length in `shot.packed`)."""
    rec = Recorder(0, id_prefix="")
    rec.steps.data += packed[0]
    rec.finished.numbers += packed[1]
    rec.finished.texts += packed[2]
    rec.serial = shot.serial
    rec.live = {
        request_id: _LiveEntry((method, path, start, first_step, serial))
        for request_id, method, path, start, first_step, serial in shot.live
    }
    rec.late = dict(shot.late)
    rec.pool_hops = dict(shot.pool_hops)
    rec.pool = list(shot.pool)
    rec.pool_samples = list(shot.pool_samples)
    rec.gc_pauses = list(shot.gc_pauses)
    rec.samples = dict(shot.samples)
    rec.watch_blocks = list(shot.watch_blocks)
    rec.dropped, rec.unrecorded, rec.errors = shot.dropped, shot.unrecorded, shot.errors
    rec.failures = {(f.hook, f.error): f for f in shot.failures}
    return server_record(
        rec,
        pid=shot.pid,
        loop=shot.loop,
        precise=shot.precise,
        block_ms=shot.block_ms,
        task_steps=shot.task_steps,
        loops=shot.loops,
        unobserved_loops=shot.unobserved_loops,
        checkpoint_ns=shot.taken_ns,
    )


def write_snapshot(shot: RecorderSnapshot, path: Path) -> None:
    """Write `shot` to `path` atomically (beside it, then renamed)."""
    partial = path.with_name(f".{path.name}.part")
    try:
        with partial.open("wb") as out:
            pickle.dump(shot, out, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def side_path(path: Path, log: str) -> Path:
    """Where the checkpoint at `path` keeps the packed log `log` (one of `PACKED`)."""
    return path.with_suffix(f".{log}")


def read_checkpoint(path: str | Path) -> ServerRecord:
    """The `ServerRecord` of the checkpoint at `path` (see the module on its format).

    Raises `ValueError` when the file is not a checkpoint, or cannot be read or restored.
    """
    path = Path(path)
    try:
        with path.open("rb") as source:
            shot = pickle.load(source)
        if not isinstance(shot, RecorderSnapshot):
            raise ValueError(f"{path} holds a {type(shot).__name__}, not a probe checkpoint.")
        logs = []
        for log, length in zip(PACKED, shot.packed, strict=True):
            with side_path(path, log).open("rb") as source:
                data = source.read(length)
            if len(data) != length:
                raise ValueError(f"{side_path(path, log)} is shorter than its checkpoint says.")
            logs.append(data)
        return restore(shot, (logs[0], logs[1], logs[2]))
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable probe checkpoint: {exc!r}") from exc


def period_from_env() -> float:
    """The checkpoint period in seconds from `LOOPSCOPE_CHECKPOINT_S` (0: no checkpoints)."""
    text = os.environ.get(ENV_CHECKPOINT_S, "")
    try:
        period = float(text) if text.strip() else DEFAULT_PERIOD_S
    except ValueError:
        return DEFAULT_PERIOD_S
    return period if period > 0 else 0.0


def _mark(rec: Recorder) -> tuple[int, ...]:
    """Numbers that change whenever the recorder stores anything, or fails to."""
    return (
        rec.used,
        rec.errors,
        rec.serial,
        len(rec.steps.data),
        len(rec.finished.numbers),
        len(rec.live),
        len(rec.watch_blocks),
        len(rec.pool),
        len(rec.gc_pauses),
    )


class Checkpointer:
    """Saves `probe`'s recorder to `path` every `period_s` while it changes, from a daemon
    thread (see the module). `stop` it before writing the final record; `discard` the file
    once that is written."""

    def __init__(self, probe: Recording, path: str | Path, period_s: float) -> None:
        self._probe = probe
        self.path = Path(path)
        self.period_s = period_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, ...] | None = None
        self._appended = [0, 0, 0]  # how much of each packed log its side file holds
        self.written = 0  # checkpoints written
        self.last_cost_ns = 0  # what the last one took
        self.last_taken_ns: int | None = None  # when it was taken

    def start(self) -> None:
        """Start taking checkpoints (not at all when `period_s` is 0)."""
        if self.period_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="loopscope-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait_s = self.period_s
        while not self._stopped.wait(wait_s):
            self._take(background=True)
            # A checkpoint that took long is followed by a longer wait (`MAX_SHARE`).
            wait_s = max(self.period_s, self.last_cost_ns / 1e9 / MAX_SHARE)

    def take(self) -> bool:
        """Save a checkpoint now if anything was recorded since the last one; whether one was
        saved. Never raises: a failure is counted as the probe's own (hook `checkpoint`)."""
        return self._take(background=False)

    def _take(self, background: bool) -> bool:
        recorder = self._probe.recorder
        try:
            mark = _mark(recorder)
            if mark == self._last:
                return False
            taken = time.monotonic_ns()
            shot = snapshot(self._probe, taken)
            if background and self._stopped.is_set():
                return False  # the final record is on its way: it must not be overtaken
            # The logs first: the snapshot, renamed into place last, says how much of them
            # counts, so a crash between the two leaves the previous checkpoint whole.
            self._append_logs(recorder, shot.packed)
            write_snapshot(shot, self.path)
            self._last = mark
            self.written += 1
            self.last_taken_ns = taken
            self.last_cost_ns = time.monotonic_ns() - taken
            return True
        except Exception as exc:
            recorder.fail("checkpoint", exc)
            return False

    def _append_logs(self, rec: Recorder, lengths: tuple[int, int, int]) -> None:
        """Append what is new of each packed log (up to `lengths`) to its side file."""
        logs = (rec.steps.data, rec.finished.numbers, rec.finished.texts)
        for i, (log, data, length) in enumerate(zip(PACKED, logs, lengths, strict=True)):
            side = side_path(self.path, log)
            done = self._appended[i]
            # A side file that is not as left (a failed write, a log cleared) starts over.
            if done and (length < done or not side.exists() or side.stat().st_size != done):
                done = self._appended[i] = 0
            if length == done and done:
                continue
            with side.open("ab" if done else "wb") as out:
                out.write(data[done:length])  # a copy of the new part only
            self._appended[i] = length

    def stop(self, timeout_s: float = 5.0) -> None:
        """Take no more checkpoints; wait (up to `timeout_s`) for one being taken."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def discard(self) -> None:
        """Remove the checkpoint file (once the final record is written, it says more)."""
        for path in (self.path, *(side_path(self.path, log) for log in PACKED)):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
