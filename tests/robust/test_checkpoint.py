"""Checkpoints (in-process, both backends): what the probe recorded, saved while the app runs,
turns back into the record the probe would have collected; nothing new, no checkpoint; a failing
checkpoint is counted, never raised; a process's final record wins over its checkpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from loopscope.probe import install
from loopscope.probe.checkpoint import Checkpointer, read_checkpoint, side_path
from loopscope.probe.instrument import Probe
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.trace.io import dump_record
from loopscope.trace.record import ServerRecord
from loopscope.trace.record_files import checkpoint_path, final_path, read_records

Message = MutableMapping[str, Any]
BLOCK_S = 0.06


@pytest.fixture(autouse=True, params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the probe's C hooks and again with its pure-Python ones."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _sleep_line() -> str:
    """`test_checkpoint.py:<n>`, where the app blocks the loop."""
    lines = Path(__file__).read_text().splitlines()
    n = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("time.sleep(BLOCK"))
    return f"test_checkpoint.py:{n}"


async def _call(app: Any, path: str, request_id: str) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"x-loopscope-request", request_id.encode())],
    }
    await app(scope, receive, send)


def _app(on_wait: Any = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)  # the request's own loop step from here on
        if scope["path"] == "/block":
            time.sleep(BLOCK_S)  # the line a checkpoint must name
        elif scope["path"] == "/wait" and on_wait is not None:
            await asyncio.sleep(0)
            on_wait()
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _serve(probe: Probe, calls: list[tuple[str, str]], on_wait: Any = None) -> None:
    app = probe.asgi(_app(on_wait))

    async def main() -> None:
        for path, request_id in calls:
            await _call(app, path, request_id)

    asyncio.run(main())


def _without_checkpoint(record: ServerRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data.pop("checkpoint_ns")
    return data


def test_a_checkpoint_turns_back_into_the_record_the_probe_collects(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-1.bin"
    with install(block_ms=20, app_root=str(Path(__file__).parent)) as probe:
        # The first call is the loop's first sight (a lifespan's, in a server).
        _serve(probe, [("/", "R0"), ("/block", "R1"), ("/", "R2"), ("/block", "R3")])
        probe.uninstall()  # the watchdog stopped: nothing changes from here on
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        assert checkpoints.take()
        collected = probe.collect()
    restored = read_checkpoint(path)
    assert restored.checkpoint_ns == checkpoints.last_taken_ns
    assert collected.checkpoint_ns is None
    assert _without_checkpoint(restored) == _without_checkpoint(collected)
    where = _sleep_line()
    assert [(b.request_id, b.where) for b in restored.loop_blocks] == [
        ("R1", where),
        ("R3", where),
    ]


def test_each_checkpoint_appends_only_what_is_new_and_restores_all(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-1.bin"
    steps_file = side_path(path, "steps")
    with install(block_ms=20, app_root=str(Path(__file__).parent)) as probe:
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        _serve(probe, [("/", "R0"), ("/block", "R1")])
        assert checkpoints.take()
        first = steps_file.stat().st_size
        assert first == len(probe.recorder.steps.data) > 0
        _serve(probe, [("/", "R2"), ("/block", "R3")])
        assert checkpoints.take()
        assert steps_file.stat().st_size == len(probe.recorder.steps.data) > first
        # A side file that is not as the last checkpoint left it is written anew.
        with steps_file.open("r+b") as out:
            out.truncate(first // 2)
        _serve(probe, [("/", "R4")])
        probe.uninstall()
        assert checkpoints.take()
        collected = probe.collect()
    restored = read_checkpoint(path)
    assert _without_checkpoint(restored) == _without_checkpoint(collected)
    assert restored.request_ids == ["R0", "R1", "R2", "R3", "R4"]
    assert [b.request_id for b in restored.loop_blocks] == ["R1", "R3"]
    # A side file cut short (a disk that filled): the checkpoint is refused, not misread.
    with steps_file.open("r+b") as out:
        out.truncate(first // 2)
    with pytest.raises(ValueError, match="shorter than its checkpoint says"):
        read_checkpoint(path)
    checkpoints.discard()
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_taken_mid_request_keeps_it_running_and_the_blocks_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint-1.bin"
    with install(block_ms=20, app_root=str(Path(__file__).parent)) as probe:
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        _serve(
            probe, [("/", "R0"), ("/block", "R1"), ("/wait", "R2"), ("/", "R3")], checkpoints.take
        )
    record = read_checkpoint(path)
    assert record.request_ids == ["R0", "R1", "R2"], "R3 came after the checkpoint"
    _, first, running = record.requests
    assert first.status == 200
    assert "loop-blocked" in [s.state for s in first.segments]
    assert (running.status, running.server_end_ns) == (None, None)
    assert [b.request_id for b in record.loop_blocks] == ["R1"]
    assert record.loop_blocks[0].where == _sleep_line()


def test_nothing_new_recorded_writes_no_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-1.bin"
    with install(block_ms=20) as probe:
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        _serve(probe, [("/", "R1")])
        probe.uninstall()
        assert checkpoints.take()
        written = path.stat().st_mtime_ns
        assert not checkpoints.take()
        assert path.stat().st_mtime_ns == written
        assert checkpoints.written == 1


def test_a_failing_checkpoint_is_counted_and_never_raised(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "checkpoint-1.bin"
    with install(block_ms=20) as probe:
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        _serve(probe, [("/", "R1")], None)
        assert not checkpoints.take()
        assert probe.recorder.errors == 1
        assert [f.hook for f in probe.recorder.failure_list()] == ["checkpoint"]
        assert not list(tmp_path.iterdir())


def test_the_thread_checkpoints_while_the_app_runs_and_stops_when_told(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-1.bin"
    seen: list[bool] = []
    with install(block_ms=20) as probe:
        checkpoints = Checkpointer(probe, path, period_s=0.05)
        checkpoints.start()

        def wait_for_a_checkpoint() -> None:
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # the loop's thread waits; the checkpoint thread runs
            seen.append(path.exists())

        _serve(probe, [("/", "R1"), ("/wait", "R2")], wait_for_a_checkpoint)
        checkpoints.stop()
        stopped_at = checkpoints.written
        _serve(probe, [("/", "R3")])
        time.sleep(0.2)
        assert checkpoints.written == stopped_at, "no checkpoint after stop"
    assert seen == [True]
    assert "R1" in read_checkpoint(path).request_ids
    checkpoints.discard()
    assert not list(tmp_path.iterdir())


def test_a_process_s_final_record_wins_over_its_checkpoint(tmp_path: Path) -> None:
    with install(block_ms=20) as probe:
        _serve(probe, [("/", "R1")])
        probe.uninstall()
        for pid in (101, 102, 103, 104):
            assert Checkpointer(probe, checkpoint_path(tmp_path, pid), period_s=1).take()
        final = probe.collect()
    dump_record(dataclasses.replace(final, pid=101), final_path(tmp_path, 101))
    final_path(tmp_path, 103).write_text('{"truncated')  # unreadable: its checkpoint counts
    checkpoint_path(tmp_path, 104).write_bytes(b"not a checkpoint")  # skipped
    records = read_records(tmp_path)
    assert len(records) == 3, "104's file is no checkpoint"
    assert (records[0].pid, records[0].checkpoint_ns) == (101, None)
    assert all(r.checkpoint_ns is not None for r in records[1:]), "102's and 103's checkpoints"
