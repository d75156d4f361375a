"""The probe never hurts the app: with faults injected into its hooks (C and pure Python), every
answer is the same as without the probe's failing, and the failures are counted in `run.probe`,
kept with their hook in `run.probe_failures`, and shown in the console report.

The table this module checks (the issue's "fault → app result → what the report says"):

| fault     | app's answers       | the report                                           |
|-----------|---------------------|------------------------------------------------------|
| `step`    | unchanged (all 200) | `probe failure in Handle._run` (asyncio)             |
| `step`    | unchanged (all 200) | `probe failure in task step` (uvloop)                |
| `request` | unchanged (all 200) | `probe failure in middleware`                        |
| `pool`    | unchanged (all 200) | `probe failure in thread pool`                       |
| `collect` | unchanged (all 200) | `probe failure in collect loop steps`                |

After a `step` fault the steps the hook skipped are said to be `not recorded after a probe
failure`, never `dropped past the memory cap` (the budget was not spent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopscope.probe.faults import ENV_FAULTS

APPS = str(Path(__file__).parents[1] / "apps")
HITS = ["GET /?n=1", "GET /sync?n=2", "GET /block", "GET /?n=3"]
EXPECTED_HOOK = {
    ("step", "asyncio"): "Handle._run",
    ("step", "uvloop"): "task step",
    ("request", "asyncio"): "middleware",
    ("pool", "asyncio"): "thread pool",
    ("collect", "asyncio"): "collect loop steps",
}


def _trace(
    tmp_path: Path, backend: str, fault: str | None, loop: str = "asyncio"
) -> tuple[dict[str, Any], str]:
    out = tmp_path / f"{backend}-{fault}-{loop}.json"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop(ENV_FAULTS, None)
    if fault is not None:
        env[ENV_FAULTS] = fault
    if backend == "python":
        env["LOOPSCOPE_PURE_PYTHON"] = "1"
    hits = [arg for hit in HITS for arg in ("--hit", hit)]
    run = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", "steady:app", "--app-dir", APPS, *hits,
         "--users", "3", "--loop", loop, "--no-warmup", "--no-html", "--json", str(out)],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text()), " ".join(run.stdout.split())


def _answers(trace: dict[str, Any]) -> list[tuple[str, int | None, int | None]]:
    return sorted((r["path"], r["status"], r["size"]) for r in trace["requests"])


@pytest.fixture(scope="module", params=["compiled", "python"])
def clean_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    """The backend, and its run with no fault: the answers every faulty run must match."""
    backend: str = request.param
    trace, _ = _trace(tmp_path_factory.mktemp("clean"), backend, None)
    return backend, trace


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "loop"), list(EXPECTED_HOOK), ids="-".join)
def test_a_fault_in_the_probe_changes_no_answer_and_is_reported(
    tmp_path: Path, clean_run: tuple[str, dict[str, Any]], fault: str, loop: str
) -> None:
    backend, clean = clean_run
    faulty, said = _trace(tmp_path, backend, fault, loop)
    assert clean["run"]["probe"]["probe_errors"] == 0
    assert _answers(faulty) == _answers(clean)
    assert all(status == 200 for _, status, _ in _answers(faulty))
    assert faulty["run"]["probe"]["probe_errors"] > 0
    hooks = {failure["hook"] for failure in faulty["run"]["probe_failures"]}
    assert EXPECTED_HOOK[fault, loop] in hooks, hooks
    assert f"probe failure in {EXPECTED_HOOK[fault, loop]}" in said
    assert "injected probe fault" in said
    # A failure is no spent budget: nothing is said to be dropped past the memory cap.
    assert faulty["run"]["probe"]["dropped_events"] == 0
    assert "memory cap" not in said
    if fault == "step":
        assert faulty["run"]["probe"]["unrecorded_events"] > 0
        assert "not recorded after a probe failure" in said
