"""The benchmark's app: one trivial `async def` route, so the probe's cost is all there is."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}
