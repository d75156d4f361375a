"""Shared fixtures: real servers on free loopback ports, started and stopped per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.demo import DemoSettings
from loopscope.server import ServerProcess, ServerSettings

APPS_DIR = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    """The seed's app on a real uvicorn with no I/O delay: for behaviour, not timing."""
    settings = ServerSettings(
        app="loopscope.demo:create_app",
        factory=True,
        env=DemoSettings(io_ms=0, users=10).to_env(),
    )
    server = ServerProcess(settings)
    with server:
        yield server
    server.close()
