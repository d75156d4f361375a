"""Loopback ports: find a free one, or say clearly that the one asked for is taken."""

from __future__ import annotations

import contextlib
import errno
import socket

from loopscope.errors import PortInUseError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port on `host` that nothing listens on now (the kernel picks it, as uvicorn's tests do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(host: str, port: int) -> None:
    """Raise `PortInUseError` if `port` on `host` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"Port {port} on {host} is in use. Pass another --port or free it."
                ) from exc
            raise


def is_listening(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
