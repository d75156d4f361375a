"""Run the fixed-rate driver in processes of its own, and merge what they measured.

The driver must never be the bottleneck, nor share a CPU with the server by accident: each
driver process runs its share of the rate (`rate / processes`, interleaved), optionally pinned to
`cpus` with `taskset`, and reports its own CPU time. The parent writes the plan to the child's
stdin as JSON; the child answers with progress lines (`P done total`) and one result line
(`R {...}`). Run as `python -m loopscope.load.driver_process`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from loopscope.errors import LoadError
from loopscope.load.fixed_rate import LEAD_S, DriverReport, RatePlan, drive
from loopscope.load.outcome import LoadOutcome, merge_reports

Progress = Callable[[int, int], None]


def plans_for(plan: RatePlan, processes: int) -> list[RatePlan]:
    """`plan` split over `processes` driver processes, each a share of the rate, interleaved
    (constant arrivals), or seeded apart (Poisson)."""
    return [
        dataclasses.replace(
            plan,
            rate=plan.rate / processes,
            seed=plan.seed + k,
            phase=k / processes,
            keep_requests=-(-plan.keep_requests // processes),
            id_prefix=f"{plan.id_prefix}{k}-" if processes > 1 else plan.id_prefix,
        )
        for k in range(processes)
    ]


def run_fixed_rate(
    plan: RatePlan,
    processes: int = 1,
    cpus: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> LoadOutcome:
    """Send `plan` from `processes` driver processes (pinned to `cpus` if given) and return the
    merged outcome. Raises `LoadError` if a driver process fails."""
    if processes < 1:
        raise LoadError(f"At least one driver process is needed, not {processes}.")
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    command = [*pin, sys.executable, "-m", "loopscope.load.driver_process"]
    children = []
    try:
        for share in plans_for(plan, processes):
            child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            children.append(child)
            assert child.stdin is not None
            child.stdin.write(json.dumps(dataclasses.asdict(share)) + "\n")
            child.stdin.flush()
        for child in children:
            _await_ready(child)
        # One start for all, shortly after the last is ready: their schedules interleave.
        start_ns = time.monotonic_ns() + int(LEAD_S * 1e9)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"GO {start_ns}\n")
            child.stdin.close()
        reports = [_collect(child, k, children, progress) for k, child in enumerate(children)]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
    return merge_reports(plan, reports, processes)


def _failed(child: subprocess.Popen[str]) -> LoadError:
    child.wait()
    assert child.stderr is not None
    return LoadError(
        f"The load driver process exited with code {child.returncode} without a result: "
        f"{child.stderr.read().strip()[-2000:]}"
    )


def _await_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    if child.stdout.readline().strip() != "READY":
        raise _failed(child)


def _collect(
    child: subprocess.Popen[str],
    index: int,
    children: list[subprocess.Popen[str]],
    progress: Progress | None,
) -> DriverReport:
    assert child.stdout is not None
    result: DriverReport | None = None
    for line in child.stdout:
        if line.startswith("P ") and progress is not None and index == 0:
            done, total = map(int, line.split()[1:3])
            # Process 0's progress stands for all: they run the same schedule side by side.
            progress(done * len(children), total * len(children))
        elif line.startswith("R "):
            result = DriverReport.from_json(line[2:])
    if result is None:
        raise _failed(child)
    child.wait()
    return result


def _raise_fd_limit() -> None:
    # One connection per request in flight: an open-loop run against a saturated server can
    # hold hundreds at once, more than a soft limit of 1024 descriptors may allow.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> None:
    """The driver process: read a plan on stdin, drive it, print progress and the result."""
    plan = RatePlan(**json.loads(sys.stdin.readline()))
    _raise_fd_limit()

    def progress(done: int, total: int) -> None:
        print(f"P {done} {total}", flush=True)

    def start_at() -> int:
        # Set up (imports, the session): say so, and wait for the common start time.
        print("READY", flush=True)
        word, start_ns = sys.stdin.readline().split()
        if word != "GO":
            raise SystemExit(f"expected GO, got {word!r}")
        return int(start_ns)

    try:
        import uvloop
    except ImportError:
        report = asyncio.run(drive(plan, progress, start_at))
    else:
        # The driver's own cost per request is what bounds its ceiling; uvloop halves it.
        report = uvloop.run(drive(plan, progress, start_at))
    print(f"R {report.to_json()}", flush=True)


if __name__ == "__main__":
    main()
