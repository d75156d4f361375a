"""The kernel's accept queue of a listening TCP socket, read from outside the server.

Linux keeps, for each listening socket, the connections whose handshake it has completed and
that no process has `accept()`ed yet: the seed's accept queue. Its length is what `ss -ltn`
prints as Recv-Q (and its limit, the backlog, as Send-Q). It is read here the way `ss` reads it,
with one `sock_diag` netlink query for the listening sockets of one address family: about 15 µs
of CPU per reading on our 2-core machine, against 7–9 ms for parsing `/proc/net/tcp` (which
lists every TCP socket of the network namespace, connections included, and grows with the
load); `benchmarks/accept_queue_cost.py` measures both. No
library wraps `sock_diag` for this one query (pyroute2 carries a whole netlink stack), so the
request and the reply's two fields are packed by hand (see `linux/inet_diag.h`).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from loopscope.errors import LoopscopeError

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x301
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# inet_diag_req_v2: family, protocol, extensions, pad, states; then a zeroed inet_diag_sockid.
_REQUEST = struct.Struct("=BBBBI48x")
# In an inet_diag_msg: the source port (big-endian) at 4, the queue lengths at 4 + 48 + 4.
_SPORT_AT = 4
_QUEUES_AT = 56


class AcceptQueueUnavailable(LoopscopeError):
    """Raised when the kernel will not answer the query (not Linux, or netlink is forbidden)."""


@dataclass(frozen=True, slots=True)
class QueueReading:
    """The accept queues of every listening socket on one port, added up: `depth` waiting
    connections, of at most `backlog`, over `sockets` listening sockets (several with
    `SO_REUSEPORT`)."""

    depth: int
    backlog: int
    sockets: int


class AcceptQueueReader:
    """Reads the accept queue of the TCP sockets listening on `port` (any local address of the
    family of `host`). Open once, read often, `close()` at the end (or use `with`)."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.port = port
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
        except (AttributeError, OSError) as exc:
            raise AcceptQueueUnavailable(
                f"The kernel's socket statistics cannot be read here: {exc}."
            ) from exc
        body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
        )
        self._query = header + body

    def read(self) -> QueueReading:
        """The queues now; `AcceptQueueUnavailable` if the kernel refuses the query."""
        try:
            self._socket.send(self._query)
            depth = backlog = sockets = 0
            while True:
                data = self._socket.recv(65536)
                offset = 0
                while offset + _NLMSG_HEADER.size <= len(data):
                    length, kind = _NLMSG_HEADER.unpack_from(data, offset)[:2]
                    if kind == _NLMSG_DONE:
                        return QueueReading(depth, backlog, sockets)
                    if kind == _NLMSG_ERROR or length < _NLMSG_HEADER.size:
                        raise AcceptQueueUnavailable(
                            "The kernel refused the socket statistics query."
                        )
                    body = offset + _NLMSG_HEADER.size
                    (sport,) = struct.unpack_from(">H", data, body + _SPORT_AT)
                    if sport == self.port:
                        waiting, limit = struct.unpack_from("=II", data, body + _QUEUES_AT)
                        depth += waiting
                        backlog += limit
                        sockets += 1
                    offset += (length + 3) & ~3
        except OSError as exc:
            raise AcceptQueueUnavailable(f"The socket statistics query failed: {exc}.") from exc

    def close(self) -> None:
        """Close the netlink socket."""
        self._socket.close()

    def __enter__(self) -> AcceptQueueReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
