"""How long `loopscope audit` takes on a large real codebase, beside flake8-async and hydroid.

The tree is the installed `fastapi`, `starlette` and `pydantic` packages, copied together into a
temporary folder (~200 files, ~78k lines). Each tool runs once on it, cold (hydroid with
`--no-cache`, loopscope has no cache), as the user would run it; the target is that loopscope is
faster than `flake8 --select ASYNC` with flake8-async. The three do different work: flake8-async
looks at each `async def` alone, hydroid and loopscope follow calls from entry points.

Each row gives wall time and CPU time (user + system of the tool and its child processes). On a
shared machine the wall time swings with the load; the CPU time is the steadier comparison.
flake8 runs one process per core, so its wall time can be below its CPU time.

    python benchmarks/audit_bench.py
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("fastapi", "starlette", "pydantic")
BIN = Path(sys.executable).parent


def build_tree(into: Path) -> tuple[int, int]:
    """Copy the installed packages into `into`; their number of files and lines."""
    for name in PACKAGES:
        module = __import__(name)
        source = Path(module.__file__ or "").parent
        shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    files = list(into.rglob("*.py"))
    return len(files), sum(len(f.read_bytes().splitlines()) for f in files)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall time and CPU time of `command`, and its standard output."""
    cpu = _children_cpu()
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if run.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({run.returncode}): {run.stderr[-500:]}")
    return elapsed, cpu, run.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="loopscope-audit-bench-") as tmp:
        tree = Path(tmp)
        files, lines = build_tree(tree)
        print(f"tree: {' + '.join(PACKAGES)}: {files} files, {lines:,} lines")
        rows = []
        ours, ours_cpu, out = timed(
            [str(BIN / "loopscope"), "audit", str(tree), "--format", "json"]
        )
        data = json.loads(out)
        rows.append(
            (
                "loopscope audit",
                ours,
                ours_cpu,
                f"{len(data['entries'])} entry points, {len(data['findings'])} findings, "
                f"{len(data['unresolved'])} unresolved calls",
            )
        )
        flake8, flake8_cpu, out = timed([str(BIN / "flake8"), "--select", "ASYNC", str(tree)])
        reports = f"{len(out.splitlines())} reports"
        rows.append(("flake8 --select ASYNC", flake8, flake8_cpu, reports))
        hydroid_bin = shutil.which("hydroid", path=str(BIN))
        if hydroid_bin is not None:
            command = [hydroid_bin, "--no-cache", "--cpu", "--python", sys.prefix]
            hydroid, hydroid_cpu, out = timed([*command, "--format", "json", str(tree)])
            found = len(json.loads(out)["diagnostics"])
            rows.append(("hydroid --cpu", hydroid, hydroid_cpu, f"{found} findings"))
        print(f"{'tool':<24} {'wall':>8}   {'cpu':>8}")
        for name, seconds, cpu, what in rows:
            print(f"{name:<24} {seconds:8.1f} s {cpu:8.1f} s   {what}")
        verdict = "faster" if ours < flake8 else "SLOWER"
        print(
            f"loopscope is {verdict} than flake8-async: {flake8 / ours:.1f}x wall, "
            f"{flake8_cpu / ours_cpu:.1f}x CPU"
        )


if __name__ == "__main__":
    main()
