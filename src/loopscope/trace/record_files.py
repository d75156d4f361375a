"""The probe's record files in a server's probe directory: where each process writes them, and
which of them a run reads.

Each process saves `checkpoint-<pid>.bin` while it runs (`loopscope.probe.checkpoint`) and
writes `probe-<pid>.json` when it shuts down, both atomically. A process that crashed left only
its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from loopscope.errors import TraceError
from loopscope.trace.io import load_record
from loopscope.trace.record import ServerRecord

FINAL_PREFIX = "probe-"
FINAL_SUFFIX = ".json"
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_SUFFIX = ".bin"


def final_path(directory: str | Path, pid: int) -> Path:
    """Where process `pid` writes its final record."""
    return Path(directory) / f"{FINAL_PREFIX}{pid}{FINAL_SUFFIX}"


def checkpoint_path(directory: str | Path, pid: int) -> Path:
    """Where process `pid` saves its checkpoints."""
    return Path(directory) / f"{CHECKPOINT_PREFIX}{pid}{CHECKPOINT_SUFFIX}"


def _by_pid(directory: Path, prefix: str, suffix: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in directory.glob(f"{prefix}*{suffix}"):
        pid = path.name[len(prefix) : -len(suffix)]
        if pid.isdigit():
            found[int(pid)] = path
    return found


def read_records(directory: str | Path) -> list[ServerRecord]:
    """Each process's record in `directory`, in order of pid: its final record where it wrote
    one, else the record of its last checkpoint (`ServerRecord.checkpoint_ns` set).

    A file that cannot be read is skipped (files are written atomically: a process killed
    mid-write leaves its previous file or none), and a final record that cannot be read falls
    back to the checkpoint; the other processes' records still count.
    """
    folder = Path(directory)
    finals = _by_pid(folder, FINAL_PREFIX, FINAL_SUFFIX)
    checkpoints = _by_pid(folder, CHECKPOINT_PREFIX, CHECKPOINT_SUFFIX)
    records: list[ServerRecord] = []
    for pid in sorted(finals.keys() | checkpoints.keys()):
        record = _final(finals.get(pid))
        if record is None and pid in checkpoints:
            # Imported here: only a crash needs the probe's code in the CLI's process.
            from loopscope.probe.checkpoint import read_checkpoint

            try:
                record = read_checkpoint(checkpoints[pid])
            except ValueError:
                continue
        if record is not None:
            records.append(record)
    return records


def _final(path: Path | None) -> ServerRecord | None:
    if path is None:
        return None
    try:
        return load_record(path)
    except TraceError:
        return None
