"""The probe's record files in a server's probe directory: where each process writes them, and
which of them a run reads.

Each process writes `checkpoint-<pid>.json` while it runs (`loopscope.probe.checkpoint`) and
`probe-<pid>.json` when it shuts down; both are written atomically. A process that crashed left
only its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from loopscope.errors import TraceError
from loopscope.trace.io import load_record
from loopscope.trace.record import ServerRecord

FINAL_PREFIX = "probe-"
CHECKPOINT_PREFIX = "checkpoint-"


def final_path(directory: str | Path, pid: int) -> Path:
    """Where process `pid` writes its final record."""
    return Path(directory) / f"{FINAL_PREFIX}{pid}.json"


def checkpoint_path(directory: str | Path, pid: int) -> Path:
    """Where process `pid` writes its checkpoints."""
    return Path(directory) / f"{CHECKPOINT_PREFIX}{pid}.json"


def read_records(directory: str | Path) -> list[ServerRecord]:
    """Each process's record in `directory`: its final one where it wrote it, else its last
    checkpoint (`ServerRecord.checkpoint_ns` set), in order of pid.

    A file that cannot be read is skipped (records are written atomically, so a process killed
    mid-write leaves its previous file or none); the others still count. A final record that
    cannot be read falls back to the checkpoint.
    """
    folder = Path(directory)
    records: dict[int, ServerRecord] = {}
    for prefix in (FINAL_PREFIX, CHECKPOINT_PREFIX):
        for path in sorted(folder.glob(f"{prefix}*.json")):
            pid_text = path.name[len(prefix) : -len(".json")]
            if not pid_text.isdigit() or int(pid_text) in records:
                continue
            try:
                records[int(pid_text)] = load_record(path)
            except TraceError:
                continue
    return [records[pid] for pid in sorted(records)]
