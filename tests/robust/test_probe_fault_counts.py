"""What the probe could not record is counted by cause, the same by both backends: events dropped
past the memory cap (the budget is spent) apart from events not recorded after one of the
probe's own failures (a fault in the step hook's call for budget), and worded apart in the
report."""

from __future__ import annotations

import asyncio
import math

import pytest

from loopscope.probe import install
from loopscope.probe._speedups_python import BUDGET_CHUNK
from loopscope.probe.faults import ENV_FAULTS
from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.probe.recorder import Recorder
from loopscope.report.words import probe_losses
from loopscope.trace.model import Run

STEPS = 3 * BUDGET_CHUNK + 17


@pytest.fixture(autouse=True, params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the probe's C hooks and again with its pure-Python ones."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _run_steps(max_events: int) -> tuple[Recorder, bool]:
    """Run `STEPS` loop steps (and the loop's own few) under a freshly installed probe; its
    recorder, and whether the step hooks were compiled."""
    probe = install(block_ms=1000, precise=True, max_events=max_events)
    try:

        async def main() -> None:
            probe.observe_loop()
            for _ in range(STEPS):
                await asyncio.sleep(0)

        asyncio.run(main())
    finally:
        probe.uninstall()
    return probe.recorder, probe.compiled


def test_a_fault_in_the_step_hook_leaves_steps_unrecorded_not_dropped(
    implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_FAULTS, "step")
    recorder, compiled = _run_steps(max_events=200_000)
    assert compiled == (implementation == "compiled")
    assert recorder.dropped == 0, "the budget was never spent"
    assert len(recorder.steps) == 0
    assert recorder.unrecorded >= STEPS
    # One failure per chunk of the budget asked for, the rest of the chunk skipped: both
    # backends alike.
    assert recorder.errors == math.ceil(recorder.unrecorded / BUDGET_CHUNK)
    assert {f.hook for f in recorder.failure_list()} == {"Handle._run"}


def test_a_spent_budget_drops_steps_and_records_no_failure(implementation: str) -> None:
    recorder, _ = _run_steps(max_events=BUDGET_CHUNK)
    assert recorder.unrecorded == 0
    assert recorder.errors == 0
    assert len(recorder.steps) == BUDGET_CHUNK
    assert recorder.dropped >= STEPS - BUDGET_CHUNK


@pytest.mark.parametrize(
    ("counts", "said"),
    [
        ({}, None),
        (
            {"dropped_events": 5},
            "5 events dropped past the memory cap, 0 probe errors",
        ),
        (
            {"unrecorded_events": 256, "probe_errors": 1},
            "256 events not recorded after a probe failure, 1 probe error",
        ),
        (
            {"dropped_events": 1, "unrecorded_events": 3, "probe_errors": 2},
            "1 event dropped past the memory cap, 3 events not recorded after a probe "
            "failure, 2 probe errors",
        ),
    ],
)
def test_the_report_words_each_loss_by_its_cause(counts: dict[str, int], said: str | None) -> None:
    assert probe_losses(Run(mode="m", app="a:b", probe=counts)) == said
