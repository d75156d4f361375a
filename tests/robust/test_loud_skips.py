"""Tests that cannot lie: skipped browser tests are announced once and loudly, and fail CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BROWSER_TESTS = str(Path(__file__).parents[1] / "report" / "test_browser.py")


def _pytest_browser_tests(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", BROWSER_TESTS],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("CI", "LOOPSCOPE_REQUIRE_BROWSER")},
            "LOOPSCOPE_TEST_CHROMIUM": str(tmp_path / "no-chromium"),
            **env,
        },
        cwd=Path(__file__).parents[2],
    )


def test_a_machine_without_chromium_is_told_once_at_the_end_and_how_to_fix_it(
    tmp_path: Path,
) -> None:
    run = _pytest_browser_tests(tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]
    assert run.stdout.count("BROWSER TESTS SKIPPED") == 1
    summary = run.stdout.split("BROWSER TESTS SKIPPED")[1]
    assert "apt-get install chromium" in summary
    # After the summary of skips, not lost among them.
    assert run.stdout.index("BROWSER TESTS SKIPPED") > run.stdout.index("short test summary")


def test_ci_fails_when_the_browser_tests_cannot_run(tmp_path: Path) -> None:
    run = _pytest_browser_tests(tmp_path, LOOPSCOPE_REQUIRE_BROWSER="1")
    assert run.returncode == 1, run.stdout[-2000:]
    assert "Chromium is not installed" in run.stdout
    assert "BROWSER TESTS SKIPPED" not in run.stdout
