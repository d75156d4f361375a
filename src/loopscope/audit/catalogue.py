"""The blocking calls the audit knows, by qualified name, and how to name what they are.

A name is matched exactly, or by a family ending in `.*` (`requests.*` is every call into
requests). Names are normalised first (`_sqlite3.connect` → `sqlite3.connect`), because an
inference engine reports where a callable is defined, which is often a private module.
`pyproject.toml` `[tool.loopscope.audit]` adds names (`blocking-io`, `blocking-cpu`) or
removes them (`allow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["io", "cpu"]


@dataclass(frozen=True, slots=True)
class Sink:
    """What a blocking call is: `code` (ours), `kind` (I/O wait or CPU), the async alternative
    in words, and the flake8-async rule covering the same call when there is one."""

    code: str
    kind: Kind
    what: str
    alternative: str
    flake8_async: str | None = None


SLEEP = Sink("LS101", "io", "sleeps", "`await asyncio.sleep(...)`", "ASYNC251")
HTTP = Sink("LS102", "io", "makes a synchronous HTTP request", "`httpx.AsyncClient`", "ASYNC210")
HTTPX_CLIENT = Sink(
    "LS102", "io", "makes a synchronous HTTP request", "`httpx.AsyncClient`", "ASYNC212"
)
URLLIB3 = Sink("LS102", "io", "makes a synchronous HTTP request", "`httpx.AsyncClient`", "ASYNC211")
DATABASE = Sink(
    "LS103",
    "io",
    "waits on a synchronous database driver",
    "an async driver (aiosqlite, asyncpg, SQLAlchemy `AsyncSession`)",
)
OPEN = Sink("LS104", "io", "does file I/O", "`anyio.open_file` or `anyio.Path`", "ASYNC230")
FDOPEN = Sink("LS104", "io", "does file I/O", "`anyio.open_file` or `anyio.Path`", "ASYNC231")
PATH_IO = Sink("LS104", "io", "does file I/O", "`anyio.Path`", "ASYNC240")
FILE_OBJECT = Sink("LS104", "io", "does file I/O", "`anyio.open_file` (an async file)", "ASYNC232")
FILE_IO = Sink("LS104", "io", "does file I/O", "`anyio.Path` or `anyio.to_thread.run_sync`")
SPAWN = Sink("LS105", "io", "starts a process", "`asyncio.create_subprocess_exec`", "ASYNC220")
RUN = Sink("LS105", "io", "runs a process and waits", "`anyio.run_process`", "ASYNC221")
WAIT = Sink("LS105", "io", "waits for a process", "`anyio.run_process`", "ASYNC222")
SOCKET = Sink("LS106", "io", "waits on a socket", "asyncio streams (`asyncio.open_connection`)")
INPUT = Sink("LS107", "io", "reads standard input", "`anyio.wrap_file(sys.stdin)`", "ASYNC250")
LOCK = Sink(
    "LS108",
    "io",
    "waits on a thread lock, event, queue or future",
    "`asyncio.Lock`/`Event`/`Queue`, or `await asyncio.wrap_future(...)`",
)
FILE_LOCK = Sink("LS108", "io", "waits on a file lock", "`filelock.AsyncFileLock`")
HASH = Sink("LS201", "cpu", "hashes a password (CPU-bound)", "a process pool")

_PATH_METHODS = [
    "open",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "exists",
    "is_file",
    "is_dir",
    "stat",
    "lstat",
    "mkdir",
    "rmdir",
    "unlink",
    "touch",
    "iterdir",
    "glob",
    "rglob",
    "rename",
    "replace",
    "resolve",
    "chmod",
    "owner",
    "group",
    "readlink",
    "samefile",
    "symlink_to",
    "hardlink_to",
    "expanduser",
    "absolute",
    "is_symlink",
]
_OS_FILE = [
    "remove",
    "unlink",
    "rmdir",
    "mkdir",
    "makedirs",
    "removedirs",
    "listdir",
    "scandir",
    "stat",
    "lstat",
    "rename",
    "renames",
    "replace",
    "walk",
    "chmod",
    "chown",
    "truncate",
    "link",
    "symlink",
    "readlink",
    "access",
]
_OS_PATH = [
    "exists",
    "isfile",
    "isdir",
    "islink",
    "getsize",
    "getmtime",
    "getatime",
    "getctime",
    "samefile",
    "realpath",
]
_HTTP_FUNCTIONS = ["get", "post", "put", "patch", "delete", "head", "options", "request", "stream"]

_FILE_CLASSES = tuple(
    f"{module}.{cls}"
    for module, names in (
        ("typing", "IO BinaryIO TextIO"),
        ("io", "TextIOWrapper BufferedReader BufferedWriter BufferedRandom FileIO"),
    )
    for cls in names.split(" ")
)
_FILE_METHODS = ("read", "readline", "readlines", "write", "writelines", "flush")

BLOCKING: dict[str, Sink] = {
    "time.sleep": SLEEP,
    "builtins.open": OPEN,
    "io.open": OPEN,
    "os.fdopen": FDOPEN,
    "builtins.input": INPUT,
    "urllib.request.urlopen": HTTP,
    "urllib.request.urlretrieve": HTTP,
    "requests.*": HTTP,
    "urllib3.*": URLLIB3,
    "http.client.HTTPConnection.*": HTTP,
    "http.client.HTTPSConnection.*": HTTP,
    "httpx.Client.*": HTTPX_CLIENT,
    **{f"httpx.{name}": HTTP for name in _HTTP_FUNCTIONS},
    "sqlite3.connect": DATABASE,
    **{
        f"sqlite3.{cls}.{m}": DATABASE
        for cls in ("Connection", "Cursor")
        for m in [
            "execute",
            "executemany",
            "executescript",
            "commit",
            "rollback",
            "close",
            "fetchone",
            "fetchall",
            "fetchmany",
            "backup",
        ]
    },
    "psycopg2.*": DATABASE,
    "psycopg.connect": DATABASE,
    "psycopg.Connection.*": DATABASE,
    "psycopg.Cursor.*": DATABASE,
    "pymysql.*": DATABASE,
    "MySQLdb.*": DATABASE,
    "redis.Redis.*": DATABASE,
    "pymongo.*": DATABASE,
    **{
        f"sqlalchemy.orm.Session.{m}": DATABASE
        for m in [
            "execute",
            "scalars",
            "scalar",
            "get",
            "commit",
            "flush",
            "query",
            "refresh",
            "merge",
            "close",
        ]
    },
    "sqlalchemy.engine.Engine.connect": DATABASE,
    "sqlalchemy.engine.Engine.begin": DATABASE,
    "sqlalchemy.engine.Connection.*": DATABASE,
    **{f"pathlib.Path.{m}": PATH_IO for m in _PATH_METHODS},
    **{f"os.path.{m}": PATH_IO for m in _OS_PATH},
    **{f"os.{m}": FILE_IO for m in _OS_FILE},
    "shutil.*": FILE_IO,
    "tempfile.mkstemp": FILE_IO,
    "tempfile.mkdtemp": FILE_IO,
    "tempfile.TemporaryDirectory": FILE_IO,
    "tempfile.NamedTemporaryFile": FILE_IO,
    "tempfile.TemporaryFile": FILE_IO,
    "subprocess.Popen": SPAWN,
    "os.popen": SPAWN,
    "os.posix_spawn": SPAWN,
    "os.posix_spawnp": SPAWN,
    **{f"subprocess.{f}": RUN for f in ["run", "call", "check_call", "check_output", "getoutput"]},
    "subprocess.getstatusoutput": RUN,
    "os.system": RUN,
    "subprocess.Popen.wait": WAIT,
    "subprocess.Popen.communicate": WAIT,
    **{f"os.{f}": WAIT for f in ("wait", "waitpid", "wait3", "wait4", "waitid")},
    "socket.create_connection": SOCKET,
    "socket.getaddrinfo": SOCKET,
    "socket.gethostbyname": SOCKET,
    **{
        f"socket.socket.{m}": SOCKET
        for m in [
            "connect",
            "accept",
            "recv",
            "recv_into",
            "recvfrom",
            "send",
            "sendall",
            "sendto",
            "makefile",
        ]
    },
    "threading.Lock.acquire": LOCK,
    **{f"{cls}.{m}": FILE_OBJECT for cls in _FILE_CLASSES for m in _FILE_METHODS},
    "threading.RLock.acquire": LOCK,
    "threading.Semaphore.acquire": LOCK,
    "threading.BoundedSemaphore.acquire": LOCK,
    "threading.Event.wait": LOCK,
    "threading.Condition.wait": LOCK,
    "threading.Barrier.wait": LOCK,
    "threading.Thread.join": LOCK,
    "queue.Queue.get": LOCK,
    "queue.Queue.put": LOCK,
    "queue.Queue.join": LOCK,
    "concurrent.futures.Future.result": LOCK,
    "concurrent.futures.Future.exception": LOCK,
    "concurrent.futures.wait": LOCK,
    "concurrent.futures.Executor.shutdown": LOCK,
    "concurrent.futures.ThreadPoolExecutor.shutdown": LOCK,
    "hashlib.pbkdf2_hmac": HASH,
    "hashlib.scrypt": HASH,
    "bcrypt.hashpw": HASH,
    "bcrypt.checkpw": HASH,
    "bcrypt.kdf": HASH,
    "argon2.PasswordHasher.hash": HASH,
    "argon2.PasswordHasher.verify": HASH,
    "passlib.context.CryptContext.hash": HASH,
    "passlib.context.CryptContext.verify": HASH,
}
"""Qualified name (or `family.*`) → what blocking it is."""

_LOCK_CLASSES = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition")
_FILE_LOCKS = ("FileLock", "SoftFileLock", "UnixFileLock", "WindowsFileLock", "BaseFileLock")

BLOCKING_WITH: dict[str, tuple[str, Sink]] = {
    **{f"threading.{cls}": ("acquire", LOCK) for cls in _LOCK_CLASSES},
    **{f"multiprocessing.{cls}": ("acquire", LOCK) for cls in _LOCK_CLASSES},
    **{f"filelock.{cls}": ("acquire", FILE_LOCK) for cls in _FILE_LOCKS},
    # A DB-API connection as a context manager commits (or rolls back) on exit.
    "sqlite3.Connection": ("__exit__", DATABASE),
    "psycopg2.extensions.connection": ("__exit__", DATABASE),
    "psycopg.Connection": ("__exit__", DATABASE),
    "pymysql.connections.Connection": ("__exit__", DATABASE),
    # A session or connection closes on exit, rolling back what is still open.
    "sqlalchemy.orm.Session": ("__exit__", DATABASE),
    "sqlalchemy.engine.Connection": ("__exit__", DATABASE),
}
"""Classes whose `with x:` blocks though no call is written: class → (the method that blocks,
`__enter__`'s acquire or `__exit__`'s commit, and what blocking it is)."""

# Where an engine reports a public callable under its implementation's module.
_PRIVATE_HOMES: tuple[tuple[str, str], ...] = (
    ("_sqlite3.", "sqlite3."),
    ("_hashlib.", "hashlib."),
    ("_socket.", "socket."),
    ("posix.", "os."),
    ("posixpath.", "os.path."),
    ("genericpath.", "os.path."),
    ("pathlib._local.", "pathlib."),
    ("pathlib._abc.", "pathlib."),
    ("_io.", "io."),
    ("io.open_code", "io.open_code"),
    ("concurrent.futures._base.", "concurrent.futures."),
    ("concurrent.futures.thread.", "concurrent.futures."),
    ("concurrent.futures.process.", "concurrent.futures."),
    ("_thread.lock.", "threading.Lock."),
    ("_thread.LockType.", "threading.Lock."),
    ("_thread.RLock.", "threading.RLock."),
    ("threading._RLock.", "threading.RLock."),
    ("multiprocessing.synchronize.", "multiprocessing."),
    ("multiprocessing.context.BaseContext.", "multiprocessing."),
    ("filelock._unix.", "filelock."),
    ("filelock._soft.", "filelock."),
    ("filelock._api.", "filelock."),
    ("sqlalchemy.engine.base.", "sqlalchemy.engine."),
    ("requests.api.", "requests."),
    ("requests.sessions.", "requests."),
    ("httpx._api.", "httpx."),
    ("httpx._client.", "httpx."),
    ("sqlalchemy.orm.session.", "sqlalchemy.orm."),
    ("redis.client.", "redis."),
    ("argon2._password_hasher.", "argon2."),
)


def normalise(qualname: str) -> str:
    """The public spelling of `qualname` (`_sqlite3.connect` → `sqlite3.connect`)."""
    for private, public in _PRIVATE_HOMES:
        if qualname.startswith(private):
            return public + qualname[len(private) :]
    return qualname


FAMILY_METHODS = frozenset(
    {*_HTTP_FUNCTIONS, "send", "getresponse", "connect", "urlopen", "request_encode_body"}
    | {"execute", "executemany", "fetchone", "fetchall", "fetchmany", "commit", "rollback"}
    | {"close", "cursor", "callproc", "begin", "scalar", "scalars", "exec_driver_sql"}
    | {"set", "hget", "hset", "hgetall", "exists", "expire", "incr", "lpush", "rpush", "lpop"}
    | {"rpop", "publish", "pipeline", "keys", "scan", "mget", "mset", "setex", "ping"}
    | {"find", "find_one", "insert_one", "insert_many", "update_one", "update_many"}
    | {"delete_one", "delete_many", "aggregate", "count_documents", "replace_one"}
)
"""Method names of the `Class.*` families above (HTTP clients, DB-API connections and
cursors, redis, pymongo): with the explicit names, every method name that can be blocking."""


class Catalogue:
    """`BLOCKING` plus the project's own additions and exemptions, queried by qualified name."""

    def __init__(
        self,
        extra_io: tuple[str, ...] = (),
        extra_cpu: tuple[str, ...] = (),
        allow: tuple[str, ...] = (),
        extra_with: tuple[str, ...] = (),
    ) -> None:
        self._sinks = dict(BLOCKING)
        listed = Sink("LS109", "io", "blocks (listed in pyproject)", "an async API")
        self._with = dict(BLOCKING_WITH)
        for name in extra_with:
            self._with[name] = ("__enter__", listed)
        for name in extra_io:
            self._sinks[name] = listed
        for name in extra_cpu:
            self._sinks[name] = Sink("LS202", "cpu", "is CPU-bound (listed in pyproject)", "")
        self._allow = frozenset(allow)
        explicit = {name.rsplit(".", 1)[-1] for name in self._sinks if not name.endswith("*")}
        self.method_names = frozenset(explicit | FAMILY_METHODS)
        """Every method name a blocking call can have: calls by other names need no types."""

    def with_sink(self, cls: str) -> tuple[str, Sink] | None:
        """The blocking call made by `with x:` on an instance of class `cls`, as (its qualified
        name, what blocking it is), or `None` when entering and leaving such a block is free."""
        name = normalise(f"{cls}.__enter__").rsplit(".", 1)[0]
        if name in self._with and name not in self._allow:
            method, sink = self._with[name]
            call = f"{name}.{method}"
            return None if call in self._allow else (call, sink)
        return None

    def sink(self, qualname: str) -> Sink | None:
        """What blocking `qualname` does, or `None` when it is not known to block."""
        name = normalise(qualname)
        parts = name.split(".")
        candidates = [name] + [".".join(parts[:i]) + ".*" for i in range(len(parts) - 1, 0, -1)]
        for candidate in candidates:
            if candidate in self._allow:
                return None
            if candidate in self._sinks:
                return self._sinks[candidate]
        return None
