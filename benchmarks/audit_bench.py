"""How long `loopscope audit` takes on a large real codebase, beside flake8-async and hydroid.

The tree is the installed `fastapi`, `starlette` and `pydantic` packages, copied together into a
temporary folder (~200 files, ~78k lines). Each tool runs once on it, cold (hydroid with
`--no-cache`, loopscope has no cache), as the user would run it; the target is that loopscope is
faster than `flake8 --select ASYNC` with flake8-async. The three do different work: flake8-async
looks at each `async def` alone, hydroid and loopscope follow calls from entry points.

    python benchmarks/audit_bench.py
"""

from __future__ import annotations

import json
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


def timed(command: list[str]) -> tuple[float, str]:
    """Wall time of `command` and its standard output."""
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if run.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({run.returncode}): {run.stderr[-500:]}")
    return elapsed, run.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="loopscope-audit-bench-") as tmp:
        tree = Path(tmp)
        files, lines = build_tree(tree)
        print(f"tree: {' + '.join(PACKAGES)}: {files} files, {lines:,} lines")
        rows = []
        ours, out = timed([str(BIN / "loopscope"), "audit", str(tree), "--format", "json"])
        data = json.loads(out)
        rows.append(
            (
                "loopscope audit",
                ours,
                f"{len(data['entries'])} entry points, {len(data['findings'])} findings, "
                f"{len(data['unresolved'])} unresolved calls",
            )
        )
        flake8, out = timed([str(BIN / "flake8"), "--select", "ASYNC", str(tree)])
        rows.append(("flake8 --select ASYNC", flake8, f"{len(out.splitlines())} reports"))
        hydroid_bin = shutil.which("hydroid", path=str(BIN))
        if hydroid_bin is not None:
            command = [hydroid_bin, "--no-cache", "--cpu", "--python", sys.prefix]
            hydroid, out = timed([*command, "--format", "json", str(tree)])
            found = len(json.loads(out)["diagnostics"])
            rows.append(("hydroid --cpu", hydroid, f"{found} findings"))
        for name, seconds, what in rows:
            print(f"{name:<24} {seconds:8.1f} s   {what}")
        verdict = "faster" if ours < flake8 else "SLOWER"
        print(f"loopscope is {verdict} than flake8-async: {flake8 / ours:.1f}x")


if __name__ == "__main__":
    main()
