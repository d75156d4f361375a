"""The audit on the seed's demo app: the `async-blocking` routes are the ones that block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO = Path(__file__).parents[2] / "src" / "loopscope" / "demo"

SQLITE = {
    ("LS103", "db.py:67", "sqlite3.connect"),
    ("LS101", "db.py:70", "time.sleep"),
    ("LS103", "db.py:71", "sqlite3.Cursor.execute"),
    ("LS103", "db.py:72", "sqlite3.Cursor.fetchone"),
    ("LS103", "db.py:75", "sqlite3.Connection.close"),
}


def test_every_demo_route_is_found_with_where_it_runs(audit_of: Any) -> None:
    entries = {e.name: e.runs_on for e in audit_of(DEMO).entries if e.kind == "route"}
    for action in ("login", "info", "history"):
        assert entries[f"POST /{action}/blocking"] == "thread pool"
        for variant in ("async-blocking", "async", "offload"):
            assert entries[f"POST /{action}/{variant}"] == "event loop"
    lifespans = [e for e in audit_of(DEMO).entries if e.kind == "lifespan"]
    assert [(e.name, e.runs_on) for e in lifespans] == [("lifespan", "event loop")]


def test_async_blocking_routes_are_flagged_with_the_chain_route_helper_time_sleep(
    audit_of: Any,
) -> None:
    result = audit_of(DEMO)
    for action, line in (("login", 93), ("info", 98), ("history", 102)):
        entry = f"POST /{action}/async-blocking"
        errors = {(f.code, f.where, f.call) for f in result.findings if f.entry == entry}
        assert errors >= SQLITE
        sleep = next(f for f in result.findings if f.entry == entry and f.call == "time.sleep")
        assert sleep.severity == "error"
        assert sleep.flake8_async == "ASYNC251"
        assert sleep.chain == (
            f"app.py:{line} {action}_async_blocking",
            f"app.py:{line + 1} UserStore.get_user_from_db",
            "db.py:70 time.sleep",
        )
        assert "`await asyncio.sleep(...)`" in sleep.fix and "run_in_threadpool" in sleep.fix
        assert f"make `{action}_async_blocking` a plain `def`" in sleep.fix


def test_async_offload_and_blocking_routes_have_no_io_finding(audit_of: Any) -> None:
    result = audit_of(DEMO)
    errors = {f.entry for f in result.findings if f.severity == "error"}
    assert errors == {f"POST /{a}/async-blocking" for a in ("login", "info", "history")}


def test_the_demo_findings_are_exactly_these(audit_of: Any) -> None:
    result = audit_of(DEMO)
    expected = {
        ("error", f"POST /{a}/async-blocking", where, call)
        for a in ("login", "info", "history")
        for _, where, call in SQLITE
    }
    # The login routes verify a scrypt hash on the loop (a few ms: the demo keeps n small).
    expected |= {
        ("warning", f"POST /login/{v}", "passwords.py:33", "hashlib.scrypt")
        for v in ("async-blocking", "async", "offload")
    }
    # The lifespan makes its temporary directory on the loop, once, at startup.
    expected.add(("warning", "lifespan", "app.py:165", "tempfile.TemporaryDirectory"))
    assert {(f.severity, f.entry, f.where, f.call) for f in result.findings} == expected
    assert result.unresolved == [] and result.problems == []


def test_fixes_lead_with_the_same_words_as_trace_verdicts(audit_of: Any) -> None:
    from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT

    findings = audit_of(DEMO).findings
    assert all(f.fix.startswith(FIX_IO_WAIT) for f in findings if f.code == "LS101")
    assert all(FIX_CPU in f.fix for f in findings if f.code == "LS201")
