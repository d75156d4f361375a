"""A lean HTTP/1.1 client for the fixed-rate driver: keep-alive connections that are callbacks,
not tasks, with httptools' C parser reading the answers.

Why not aiohttp here: its request path cost the driver 104-190 µs of CPU per request (profiled:
`ClientSession._request`, header building, its timers and connector; 50-60 µs with this client,
`benchmarks/bench_driver.py`), so on a machine shared with other work the driver, not the
server, set the pace past capacity. A connection here sends
one pre-built request at a time and hands the answer to `Pool.finished`; nothing is allocated per
request but the `Exchange` and its bytes.

`Pool` holds up to `limit` connections, opened when first needed. A request due while all are
busy waits in the pool's FIFO backlog for the first one to free up: that is the server being
saturated (its connections are all waiting on it), not the driver falling behind, and the
request's latency still counts from its intended time. Every request ends in exactly one of:
an answer (any status), an error (connect failure, disconnect, unparsable answer) or a timeout
(`timeout_ns` after it was issued, waiting for a connection included).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

from loopscope.errors import UsageError
from loopscope.trace.constants import REQUEST_HEADER

SWEEP_S = 0.02
"""How often timeouts are looked for: a timeout is noticed at most this late."""


class Exchange:
    """One request and what became of it. Times are `monotonic_ns`; `None` until they happen."""

    __slots__ = (
        "deadline_ns",
        "done_ns",
        "error",
        "first_byte_ns",
        "index",
        "intended_ns",
        "issued_ns",
        "retried",
        "sent_ns",
        "status",
        "timed_out",
        "waited",
        "waiter",
    )

    def __init__(self, index: int, intended_ns: int, issued_ns: int, timeout_ns: int) -> None:
        self.index = index
        self.intended_ns = intended_ns
        # When the driver got to it: `issued_ns - intended_ns` is the driver's own lateness.
        self.issued_ns = issued_ns
        self.deadline_ns = issued_ns + timeout_ns
        # When it went on the wire: `sent_ns - issued_ns` is its wait for a free connection.
        self.sent_ns = 0
        self.first_byte_ns: int | None = None
        self.done_ns = 0
        self.status: int | None = None
        self.error: str | None = None
        self.timed_out = False
        self.retried = False
        self.waited = False
        self.waiter: asyncio.Future[None] | None = None

    @property
    def finished(self) -> bool:
        """Whether it has its outcome (answer, error or timeout)."""
        return self.done_ns != 0


class Target:
    """Where to send and what: the request's bytes up to its id header, and after it."""

    def __init__(self, url: str, method: str, body: bytes | None, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"The load driver sends plain http:// only, not {url!r}.")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.method = method.upper()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"{self.method} {path} HTTP/1.1", f"host: {netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"content-length: {len(body)}")
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._body = body or b""

    def payload(self, id_header: bytes) -> bytes:
        """The whole request, with `id_header` (one header line, CRLF-terminated) in it."""
        return self._head + id_header + b"\r\n" + self._body


class Connection(asyncio.Protocol):
    """One keep-alive connection, one exchange at a time; also httptools' parser callbacks."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.served = 0
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = pool.target.method == "HEAD"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called twice under uvloop (see `Pool._open_for`). uvloop's transports are not
        # `asyncio.Transport` subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, exchange: Exchange, payload: bytes) -> None:
        """Put `exchange` on the wire."""
        assert self.transport is not None and self.exchange is None
        self.exchange = exchange
        exchange.sent_ns = time.monotonic_ns()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes nobody asked for: the stream is out of step; never reuse it.
            self.abort()
            return
        if exchange.first_byte_ns is None:
            exchange.first_byte_ns = time.monotonic_ns()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.exchange = None
            self.abort()
            self.pool.failed(self, exchange, f"bad answer ({type(exc).__name__})")

    def on_headers_complete(self) -> None:
        if self._head_only:
            # A HEAD answer has no body whatever its length says; the parser cannot know it
            # was a HEAD, so the connection is not reused.
            self._complete(keep_alive=False)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self._complete(keep_alive=self._parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        exchange = self.exchange
        assert exchange is not None
        self.exchange = None
        self.served += 1
        exchange.status = self._parser.get_status_code()
        if not keep_alive:
            self.abort()
        self.pool.answered(self, exchange)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange, self.exchange = self.exchange, None
        self.pool.lost(self, exchange, exc)

    def abort(self) -> None:
        """Close at once (a timeout, an error, or the server asked for it)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


Finished = Callable[[Exchange], None]


class Pool:
    """Up to `limit` connections to `target`; requests beyond them wait in a FIFO backlog."""

    def __init__(self, target: Target, limit: int, finished: Finished, id_prefix: str) -> None:
        self.target = target
        self.limit = max(1, limit)
        self.finished = finished
        self.id_prefix = id_prefix
        self.open = 0
        self.opened = 0
        self.idle: list[Connection] = []
        self.backlog: deque[Exchange] = deque()
        self.backlog_max = 0
        self.busy: set[Connection] = set()
        self.connecting: set[Exchange] = set()
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = self._loop.call_later(SWEEP_S, self._sweep)

    def issue(self, exchange: Exchange) -> None:
        """Send `exchange` now on a free connection, or a new one, or queue it for one."""
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:  # (one the server closed while idle is counted by `lost`)
                self._send(connection, exchange)
                return
        if self.open < self.limit:
            self._connect(exchange)
        else:
            exchange.waited = True
            self.backlog.append(exchange)
            self.backlog_max = max(self.backlog_max, len(self.backlog))

    def _send(self, connection: Connection, exchange: Exchange) -> None:
        self.busy.add(connection)
        header = f"{REQUEST_HEADER}: {self.id_prefix}{exchange.index + 1}\r\n"
        connection.send(exchange, self.target.payload(header.encode("latin-1")))

    def _connect(self, exchange: Exchange) -> None:
        self.open += 1
        self.opened += 1
        self.connecting.add(exchange)
        task = self._loop.create_task(self._open_for(exchange))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_for(self, exchange: Exchange) -> None:
        try:
            transport, connection = await self._loop.create_connection(
                lambda: Connection(self), self.target.host, self.target.port
            )
        except OSError as exc:
            self.open -= 1
            self.connecting.discard(exchange)
            if not exchange.finished:
                self._finish(exchange, error=f"connect: {type(exc).__name__}")
            self._next_from_backlog()
            return
        self.connecting.discard(exchange)
        # uvloop may resolve the connection before it calls `connection_made`.
        connection.connection_made(transport)
        if connection.closed:  # closed by the server at once (`lost` counted it)
            if not exchange.finished:
                self._finish(exchange, error="disconnected (closed on connect)")
        elif exchange.finished:  # timed out while connecting: the connection serves the next
            self._free(connection)
        else:
            self._send(connection, exchange)

    def answered(self, connection: Connection, exchange: Exchange) -> None:
        """Called by `connection` with the answer to `exchange`."""
        self.busy.discard(connection)
        self._finish(exchange)
        self._free(connection)

    def failed(self, connection: Connection, exchange: Exchange, error: str) -> None:
        """Called by `connection` when `exchange` failed on it (it is closing)."""
        self.busy.discard(connection)
        self._finish(exchange, error=error)

    def lost(
        self, connection: Connection, exchange: Exchange | None, exc: Exception | None
    ) -> None:
        """Called when `connection` closed, with the exchange it was carrying, if any."""
        self.busy.discard(connection)
        self.open -= 1
        if exchange is not None and not exchange.finished:
            stale = connection.served > 0 and exchange.first_byte_ns is None
            if stale and not exchange.retried:
                # The server had closed this kept-alive connection before our request reached
                # it (uvicorn does after a 500 without saying so): the request never got to
                # the app; it is sent once more, on a new connection, still timed from its
                # intended send.
                exchange.retried = True
                self._connect(exchange)
                return
            name = type(exc).__name__ if exc is not None else "closed"
            self._finish(exchange, error=f"disconnected ({name})")
        self._next_from_backlog()

    def _free(self, connection: Connection) -> None:
        if connection.closed:
            return  # `lost` does the accounting and serves the backlog
        while self.backlog:
            exchange = self.backlog.popleft()
            if not exchange.finished:
                self._send(connection, exchange)
                return
        self.idle.append(connection)

    def _next_from_backlog(self) -> None:
        # A connection closed: open another for the oldest waiting request, if any.
        while self.backlog and self.open < self.limit:
            exchange = self.backlog.popleft()
            if not exchange.finished:
                self._connect(exchange)
                return

    def _finish(
        self, exchange: Exchange, error: str | None = None, timed_out: bool = False
    ) -> None:
        exchange.done_ns = time.monotonic_ns()
        exchange.error = error
        exchange.timed_out = timed_out
        self.finished(exchange)

    def _sweep(self) -> None:
        # Every SWEEP_S: time out what is past its deadline, waiting or on the wire. The
        # backlog is in issue order, so only its head can be due.
        now = time.monotonic_ns()
        while self.backlog and self.backlog[0].deadline_ns <= now:
            exchange = self.backlog.popleft()
            if not exchange.finished:
                self._finish(exchange, timed_out=True)
        for exchange in [e for e in self.connecting if e.deadline_ns <= now]:
            if not exchange.finished:
                self._finish(exchange, timed_out=True)
        for connection in [c for c in self.busy if c.exchange and c.exchange.deadline_ns <= now]:
            late = connection.exchange
            assert late is not None
            connection.exchange = None
            self.busy.discard(connection)
            connection.abort()
            self._finish(late, timed_out=True)
        self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)

    async def close(self) -> None:
        """Stop the sweep and close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        for connection in [*self.idle, *self.busy]:
            connection.abort()
        self.idle.clear()
        # Let the transports run their connection_lost callbacks.
        await asyncio.sleep(0)
