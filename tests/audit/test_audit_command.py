"""`loopscope audit` as a user runs it: formats, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).parents[2]
DEMO = REPOSITORY / "src" / "loopscope" / "demo"


def loopscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPOSITORY,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


def test_json_lists_entries_and_findings_and_exits_1_on_errors() -> None:
    result = loopscope("audit", str(DEMO), "--format", "json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert {"kind", "name", "where", "runs_on"} <= set(data["entries"][0])
    finding = next(f for f in data["findings"] if f["call"] == "time.sleep")
    assert set(finding) >= {"code", "severity", "where", "entry", "chain", "call", "fix"}
    assert finding["where"] == "db.py:70"
    assert finding["chain"][-1] == "db.py:70 time.sleep"


def test_fail_on_never_exits_0_and_text_shows_the_inventory(tmp_path: Path) -> None:
    result = loopscope("audit", str(DEMO), "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    assert "POST /login/async-blocking" in result.stdout and "thread pool" in result.stdout
    assert "→ db.py:70 time.sleep" in result.stdout


def test_a_clean_project_exits_0_even_when_failing_on_warnings(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "from fastapi import FastAPI\napp = FastAPI()\n\n"
        "@app.get('/')\nasync def root():\n    return {}\n"
    )
    result = loopscope("audit", str(tmp_path), "--fail-on", "warning")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_path_is_a_one_line_usage_error() -> None:
    result = loopscope("audit", "/no/such/project")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: /no/such/project does not exist. Pass a project directory or a Python file."
    ]
    assert "Traceback" not in result.stderr


def test_sarif_is_version_2_1_0_with_a_rule_per_code() -> None:
    result = loopscope("audit", str(DEMO), "--format", "sarif", "--fail-on", "never")
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "loopscope"
    rules = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in run["results"]} == rules == {"LS101", "LS103", "LS104", "LS201"}
    sleep = next(r for r in run["results"] if r["ruleId"] == "LS101")
    region = sleep["locations"][0]["physicalLocation"]
    # Run from the repository root, as CI does: URIs are relative to it, where GitHub looks.
    assert region["artifactLocation"]["uri"] == "src/loopscope/demo/db.py"
    assert region["region"]["startLine"] == 70


def test_a_max_depth_below_one_is_a_usage_error() -> None:
    result = loopscope("audit", str(DEMO), "--max-depth", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --max-depth must be at least 1, not 0."
