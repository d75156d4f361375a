"""The demo app's settings, read from the environment so that a uvicorn factory can find them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loopscope.errors import UsageError

ENV_IO_MS = "LOOPSCOPE_DEMO_IO_MS"
ENV_USERS = "LOOPSCOPE_DEMO_USERS"
ENV_DB = "LOOPSCOPE_DEMO_DB"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """How slow the simulated DML is, how many users exist, and where the database lives.

    `db_path=None` puts the database in a temporary directory that lives as long as the app.
    """

    io_ms: float = 1000.0
    users: int = 100
    db_path: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.io_ms <= 600_000:
            raise UsageError(f"io_ms must be between 0 and 600000, not {self.io_ms}.")
        if not 1 <= self.users <= 1_000_000:
            raise UsageError(f"users must be between 1 and 1000000, not {self.users}.")

    def to_env(self) -> dict[str, str]:
        """The environment variables that `from_env` reads back."""
        env = {ENV_IO_MS: repr(self.io_ms), ENV_USERS: str(self.users)}
        if self.db_path is not None:
            env[ENV_DB] = str(self.db_path)
        return env

    @classmethod
    def from_env(cls) -> DemoSettings:
        """Settings from `LOOPSCOPE_DEMO_IO_MS`, `LOOPSCOPE_DEMO_USERS`, `LOOPSCOPE_DEMO_DB`."""
        try:
            io_ms = float(os.environ.get(ENV_IO_MS, "1000"))
            users = int(os.environ.get(ENV_USERS, "100"))
        except ValueError as exc:
            raise UsageError(f"Bad demo setting in the environment: {exc}.") from exc
        db = os.environ.get(ENV_DB)
        return cls(io_ms=io_ms, users=users, db_path=Path(db) if db else None)
