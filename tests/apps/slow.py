"""An app that is slow to start (`SLOW_START_S` seconds at import) and a route that answers
only after a minute: for the start-up limit and for Ctrl-C in the middle of a run."""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI

time.sleep(float(os.environ.get("SLOW_START_S", "0")))
app = FastAPI()


@app.get("/slow")
async def slow() -> dict[str, str]:
    await asyncio.sleep(60)
    return {"slow": "yes"}
