"""The corpus: each case's `bad.py` gives exactly these findings, and its `good.py` none.

A finding is written `(severity, code, entry, where, call)`; `where` is the blocking call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"


def findings(result: Any) -> set[tuple[str, str, str, str, str]]:
    return {(f.severity, f.code, f.entry, f.where, f.call) for f in result.findings}


def sleeps(*cases: tuple[str, str]) -> set[tuple[str, str, str, str, str]]:
    return {("error", "LS101", entry, where, "time.sleep") for entry, where in cases}


EXPECTED: dict[str, set[tuple[str, str, str, str, str]]] = {
    "routes": sleeps(
        ("GET /sleep", "bad.py:11"),
        ("POST /sleep", "bad.py:16"),
        ("PUT /added", "bad.py:20"),
        ("WS /ws", "bad.py:28"),
        ("GET,POST /both", "bad.py:33"),
    ),
    "dependencies": sleeps(
        ("slow_user", "bad.py:10"),
        ("token", "bad.py:15"),
        ("inner", "bad.py:20"),
        ("session", "bad.py:28"),
    ),
    "middleware": sleeps(
        ("Timing", "bad.py:11"), ("PureAsgi", "bad.py:20"), ("stamp", "bad.py:26")
    ),
    "handlers": sleeps(
        ("on_value_error", "bad.py:19"), ("notify", "bad.py:28"), ("rows", "bad.py:32")
    )
    | {
        ("warning", "LS101", "lifespan", "bad.py:10", "time.sleep"),
        ("warning", "LS101", "warm_up", "bad.py:24", "time.sleep"),
    },
    "chains": sleeps(
        ("GET /orders/{key}", "shop/storage.py:9"), ("GET /lookup/{key}", "shop/storage.py:14")
    ),
    "offload": sleeps(("GET /direct", "bad.py:9")),
    "catalogue": {
        ("error", code, "GET /io", f"bad.py:{line}", call)
        for line, code, call in [
            (23, "LS102", "requests.get"),
            (24, "LS102", "urllib.request.urlopen"),
            (25, "LS102", "http.client.HTTPConnection.request"),
            (26, "LS103", "sqlite3.connect"),
            (27, "LS103", "psycopg2.connect"),
            (28, "LS103", "pymysql.connect"),
            (29, "LS104", "builtins.open"),
            (30, "LS104", "pathlib.Path.read_text"),
            (31, "LS104", "os.remove"),
            (32, "LS105", "subprocess.run"),
            (33, "LS105", "os.system"),
            (34, "LS105", "os.wait"),
            (35, "LS106", "socket.create_connection"),
            (36, "LS107", "builtins.input"),
            (37, "LS108", "threading.Lock.acquire"),
        ]
    }
    | {
        ("warning", "LS201", "GET /cpu", "bad.py:42", "hashlib.pbkdf2_hmac"),
        ("warning", "LS201", "GET /cpu", "bad.py:43", "bcrypt.hashpw"),
    },
    "receivers": {
        ("error", "LS103", "GET /session", "bad.py:59", "sqlalchemy.orm.Session.execute"),
        ("error", "LS108", "GET /future", "bad.py:64", "concurrent.futures.Future.result"),
        ("error", "LS108", "GET /queue", "bad.py:69", "queue.Queue.get"),
        ("error", "LS108", "GET /event", "bad.py:74", "threading.Event.wait"),
        ("error", "LS104", "GET /report", "bad.py:29", "builtins.open"),
        ("error", "LS101", "GET /timed", "bad.py:35", "time.sleep"),
        ("error", "LS101", "GET /later", "bad.py:42", "time.sleep"),
        ("error", "LS101", "chunks", "bad.py:46", "time.sleep"),
    },
    "suppression": sleeps(("GET /wrong-code", "bad.py:10")),
    "coroutines": {
        ("error", "LS101", "async def helper", "bad.py:9", "time.sleep"),
        ("error", "LS108", "async def guarded", "bad.py:13", "threading.RLock.acquire"),
        ("error", "LS104", "async def save", "bad.py:18", "typing.BinaryIO.write"),
    },
    "hints": {("hint", "LS301", "GET /health", "bad.py:7", "bad.health")},
    "context_managers": {
        ("error", code, entry, f"bad.py:{line}", call)
        for code, entry, line, call in [
            ("LS108", "GET /semaphore", 29, "threading.Semaphore.acquire"),
            ("LS108", "GET /bounded", 35, "threading.BoundedSemaphore.acquire"),
            ("LS108", "GET /condition", 41, "threading.Condition.acquire"),
            ("LS108", "GET /process-lock", 47, "multiprocessing.Lock.acquire"),
            ("LS108", "GET /file-lock", 53, "filelock.FileLock.acquire"),
            ("LS108", "GET /file-lock-inline", 59, "filelock.FileLock.acquire"),
            ("LS103", "GET /commit", 65, "sqlite3.Connection.__exit__"),
            ("LS106", "GET /socket", 71, "socket.create_connection"),
            ("LS101", "GET /gate", 20, "time.sleep"),
            ("LS108", "GET /store", 86, "threading.RLock.acquire"),
            ("LS108", "GET /store", 91, "threading.Lock.acquire"),
        ]
    },
    "instance_dependencies": sleeps(
        ("TokenChecker.__call__", "bad.py:14"), ("RoleChecker.__call__", "bad.py:20")
    ),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_corpus_case_gives_exactly_its_findings_and_good_code_none(
    case: str, audit_of: Any
) -> None:
    result = audit_of(CORPUS / case)
    assert findings(result) == EXPECTED[case]
    assert result.problems == []


def test_every_corpus_case_is_checked() -> None:
    cases = {p.name for p in CORPUS.iterdir() if p.is_dir() and (p / "bad.py").exists()}
    assert cases == set(EXPECTED)


def test_chains_follow_methods_constructors_modules_and_import_aliases(audit_of: Any) -> None:
    chains = {f.entry: f.chain for f in audit_of(CORPUS / "chains").findings}
    assert chains["GET /orders/{key}"] == (
        "bad.py:9 order",
        "bad.py:10 Orders.find",
        "shop/services.py:10 Repo.load",
        "shop/storage.py:6 Repo._read",
        "shop/storage.py:9 time.sleep",
    )
    assert chains["GET /lookup/{key}"] == (
        "bad.py:14 find",
        "bad.py:15 lookup",
        "shop/services.py:14 slow_lookup",
        "shop/storage.py:14 time.sleep",
    )


def test_a_decorator_wrapper_and_a_loop_callback_are_part_of_the_chain(audit_of: Any) -> None:
    chains = {f.entry: f.chain for f in audit_of(CORPUS / "receivers").findings}
    assert chains["GET /timed"] == (
        "bad.py:84 timed_route",
        "bad.py:34 wrapper (decorator wrapper)",
        "bad.py:35 time.sleep",
    )
    assert chains["GET /later"] == (
        "bad.py:89 schedules_later",
        "bad.py:90 later",
        "bad.py:42 time.sleep",
    )
    assert chains["GET /report"][1] == "bad.py:79 Report.__init__"


def test_a_with_block_on_a_project_class_runs_its_enter_on_the_loop(audit_of: Any) -> None:
    chains = {f.entry: f.chain for f in audit_of(CORPUS / "context_managers").findings}
    assert chains["GET /gate"] == (
        "bad.py:76 gate",
        "bad.py:77 Gate.__enter__",
        "bad.py:20 time.sleep",
    )


def test_calls_that_cannot_be_resolved_are_listed_not_dropped(audit_of: Any) -> None:
    unresolved = {(u.where, u.text) for u in audit_of(CORPUS / "receivers").unresolved}
    assert ("bad.py:100", "HANDLERS[name]") in unresolved


def test_where_each_entry_runs(audit_of: Any) -> None:
    runs = {
        (e.kind, e.name): e.runs_on
        for case in ("dependencies", "handlers", "offload", "middleware", "instance_dependencies")
        for e in audit_of(CORPUS / case).entries
    }
    assert runs == {
        ("dependency", "slow_user"): "event loop",
        ("dependency", "token"): "event loop",
        ("dependency", "inner"): "event loop",
        ("dependency", "outer"): "event loop",
        ("dependency", "session"): "event loop",
        ("route", "GET /deps"): "event loop",
        ("dependency", "sync_user"): "thread pool",
        ("dependency", "sync_session"): "thread pool",
        ("dependency", "Paging"): "thread pool",
        ("dependency", "async_user"): "event loop",
        ("route", "GET /good/deps"): "event loop",
        ("lifespan", "lifespan"): "event loop",
        ("exception handler", "on_value_error"): "event loop",
        ("event handler", "warm_up"): "event loop",
        ("background task", "notify"): "event loop",
        ("stream", "rows"): "event loop",
        ("route", "POST /signup"): "event loop",
        ("exception handler", "on_key_error"): "thread pool",
        ("background task", "notify_in_pool"): "thread pool",
        ("stream", "rows_in_pool"): "thread pool",
        ("route", "POST /good/signup"): "event loop",
        ("route", "GET /direct"): "event loop",
        ("background task", "work"): "thread pool",
        ("route", "GET /threadpool"): "event loop",
        ("route", "GET /anyio"): "event loop",
        ("route", "GET /to-thread"): "event loop",
        ("route", "GET /executor"): "event loop",
        ("route", "GET /background"): "event loop",
        ("middleware", "Timing"): "event loop",
        ("middleware", "PureAsgi"): "event loop",
        ("middleware", "stamp"): "event loop",
        ("middleware", "GoodTiming"): "event loop",
        ("middleware", "GoodAsgi"): "event loop",
        ("dependency", "TokenChecker.__call__"): "event loop",
        ("dependency", "RoleChecker.__call__"): "event loop",
        ("route", "GET /inline"): "event loop",
        ("route", "GET /named"): "event loop",
        ("dependency", "SyncChecker.__call__"): "thread pool",
        ("dependency", "SessionMaker.__call__"): "thread pool",
        ("dependency", "AwaitingChecker.__call__"): "event loop",
        ("route", "GET /good/instances"): "event loop",
    }
