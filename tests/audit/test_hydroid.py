"""loopscope against the reference, hydroid (a Rust tool built on the ty type checker).

Compared by blocking call site (`path:line`): every site hydroid reports, loopscope reports too,
except where a `# loopscope: ignore` comment says not to. Each site only loopscope reports is
listed in `ONLY_LOOPSCOPE` with the reason, so a new disagreement fails this test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
DEMO = Path(__file__).parents[2] / "src" / "loopscope" / "demo"
HYDROID = shutil.which("hydroid", path=str(Path(sys.executable).parent)) or shutil.which("hydroid")

NOT_INSTALLED = "not installed here: hydroid resolves imports through the venv only; "
NOT_INSTALLED += "loopscope names the callee from the import itself"
ONLY_LOOPSCOPE: dict[tuple[str, str], str] = {
    ("catalogue", "bad.py:23"): f"requests.get: requests {NOT_INSTALLED}",
    ("catalogue", "bad.py:27"): f"psycopg2.connect: psycopg2 {NOT_INSTALLED}",
    ("catalogue", "bad.py:28"): f"pymysql.connect: pymysql {NOT_INSTALLED}",
    ("catalogue", "bad.py:43"): f"bcrypt.hashpw: bcrypt {NOT_INSTALLED}",
    ("catalogue", "bad.py:37"): "threading.Lock.acquire: not in hydroid's catalogue",
    ("receivers", "bad.py:59"): "db.execute on `db: Annotated[Session, Depends(get_db)]`: "
    "hydroid lists it as unresolved (sqlalchemy is not installed); loopscope reads the "
    "annotation's import",
    ("context_managers", "bad.py:47"): "`with` a multiprocessing lock: not in hydroid's "
    "catalogue (it misses an explicit `multiprocessing.Lock().acquire()` too)",
    ("context_managers", "bad.py:53"): f"`with` a FileLock instance: filelock {NOT_INSTALLED}",
    ("context_managers", "bad.py:59"): "`with FileLock(...)`: hydroid lists the call as "
    "unresolved (filelock is not installed); loopscope reads the import",
    ("context_managers", "bad.py:65"): "`with conn:` on a sqlite3 connection commits on exit: "
    "hydroid does not model `__exit__` (it does report an explicit `conn.commit()`)",
    ("context_managers", "bad.py:91"): "`with` a `threading.Lock`: not in hydroid's catalogue "
    "(as catalogue bad.py:37; it does report the `RLock` at bad.py:86)",
    ("demo", "db.py:70"): "time.sleep after sqlite3.connect in the same helper: hydroid "
    "reports the first blocking call of a chain only; loopscope reports every one",
    ("demo", "db.py:71"): "sqlite3 Cursor.execute: as above, hydroid stops at the first call",
    ("demo", "db.py:72"): "sqlite3 Cursor.fetchone: as above",
    ("demo", "db.py:75"): "sqlite3 Connection.close: as above",
}
ONLY_HYDROID: dict[tuple[str, str], str] = {
    ("suppression", "good.py:10"): "silenced by `# loopscope: ignore` on the line",
    ("suppression", "good.py:15"): "silenced by `# loopscope: ignore[LS101]` on the line",
}
CASES = {**{p.name: p for p in CORPUS.iterdir() if (p / "bad.py").exists()}, "demo": DEMO}


def hydroid_sites(path: Path) -> set[str]:
    assert HYDROID is not None
    run = subprocess.run(
        [HYDROID, "--no-cache", "--cpu", "--python", sys.prefix, "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr
    sites = set()
    for diagnostic in json.loads(run.stdout)["diagnostics"]:
        chain = diagnostic["chain"]
        location = chain[-1]["location"] if chain else diagnostic["location"]
        sites.add(f"{location['path']}:{location['line']}")
    return sites


@pytest.mark.skipif(
    HYDROID is None, reason="hydroid-cli is not installed (pip install -e '.[dev]')"
)
@pytest.mark.parametrize("case", sorted(CASES))
def test_loopscope_and_hydroid_disagree_only_where_explained(case: str, audit_of: Any) -> None:
    ours = {f.where for f in audit_of(CASES[case]).findings if f.severity != "hint"}
    theirs = hydroid_sites(CASES[case])
    assert {(case, w) for w in ours - theirs} == {k for k in ONLY_LOOPSCOPE if k[0] == case}
    assert {(case, w) for w in theirs - ours} == {k for k in ONLY_HYDROID if k[0] == case}
