"""The app: `/api/reports/...` routes on one router."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiosqlite
from fastapi import APIRouter, FastAPI

from reports.storage import export, read_archive, render

REPORTS_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reports")
DB = Path(os.environ.get("REPORTS_DB") or tempfile.mkdtemp(prefix="reports-")) / "reports.db"

router = APIRouter()


@router.get("/archive/{name}")
async def archive(name: str) -> dict[str, str]:
    return read_archive(name)


@router.get("/render")
async def render_page() -> dict[str, int]:
    return {"total": render(2_500_000)}


@router.get("/export/{name}")
async def export_thread(name: str) -> dict[str, str]:
    return {"file": await asyncio.to_thread(export, name)}


@router.get("/pdf/{name}")
async def export_pool(name: str) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    return {"file": await loop.run_in_executor(REPORTS_POOL, export, name)}


@router.get("/count")
async def count() -> dict[str, int]:
    async with aiosqlite.connect(DB) as db:
        # A query that holds the connection's thread 0.12 s on any machine (a recursive CTE's
        # time would depend on the CPU): SQLite calls back into Python, which waits.
        await db.create_function("pause", 1, _pause)
        cursor = await db.execute("SELECT pause(0.12), count(*) FROM sqlite_master")
        row = await cursor.fetchone()
    return {"count": row[1] if row else 0}


def _pause(seconds: float) -> int:
    time.sleep(seconds)
    return 0


@router.get("/status")
async def status() -> dict[str, bool]:
    await asyncio.sleep(0.12)
    return {"ok": True}


app = FastAPI()
app.include_router(router, prefix="/api/reports")
