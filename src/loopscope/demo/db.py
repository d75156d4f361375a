"""The seed's users database: SQLite with username, password, info and history.

`get_user_from_db` is the seed's helper, kept as the seed wrote it: a fresh `sqlite3` connection,
`time.sleep` standing for a slow DML, then a parameterised `SELECT`. `get_user_from_db_async` is
the seed's "non-blocking version": `asyncio.sleep` and `aiosqlite`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from loopscope.demo.passwords import hash_password

UserRow = tuple[str, str, str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    info TEXT NOT NULL,
    history TEXT NOT NULL
)
"""
_SELECT_USER = "SELECT username, password, info, history FROM users WHERE username = ?"


def demo_password(index: int) -> str:
    """The password of `user<index>` in the demo database (the load scenario logs in with it)."""
    return f"password{index}"


def create_users_db(path: Path, users: int) -> None:
    """Create the users table at `path` with `users` rows `user0`, `user1`, ... (idempotent)."""
    with sqlite3.connect(path) as conn:
        conn.execute(_SCHEMA)
        existing = {row[0] for row in conn.execute("SELECT username FROM users")}
        rows = [
            (
                f"user{i}",
                hash_password(demo_password(i)),
                f"user{i} joined in {2000 + i % 25} and likes {('tea', 'coffee', 'cocoa')[i % 3]}",
                f"user{i} logged in {i % 7 + 1} times this week",
            )
            for i in range(users)
            if f"user{i}" not in existing
        ]
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows)
    # sqlite3's context manager commits but does not close.
    conn.close()


@dataclass(frozen=True, slots=True)
class UserStore:
    """Where the users live and how slow a lookup is (`io_s` stands for the seed's 1 s DML)."""

    path: Path
    io_s: float

    def get_user_from_db(self, username: str) -> UserRow | None:
        """The seed's blocking lookup: the calling thread waits `io_s`, then queries."""
        conn = sqlite3.connect(self.path)
        try:
            cursor = conn.cursor()
            time.sleep(self.io_s)  # the seed's slow DML: this thread waits, holding no CPU
            cursor.execute(_SELECT_USER, (username,))
            user: UserRow | None = cursor.fetchone()
            return user
        finally:
            conn.close()

    async def get_user_from_db_async(self, username: str) -> UserRow | None:
        """The seed's non-blocking lookup: awaits the delay and an async SQLite driver."""
        async with aiosqlite.connect(self.path) as conn:
            await asyncio.sleep(self.io_s)  # the slow DML again, but the loop is free meanwhile
            async with conn.execute(_SELECT_USER, (username,)) as cursor:
                row = await cursor.fetchone()
                return None if row is None else (row[0], row[1], row[2], row[3])
