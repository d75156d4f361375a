import asyncio
import hashlib

import httpx
from fastapi import FastAPI

app = FastAPI()


@app.get("/good/io")
async def awaited_io():
    async with httpx.AsyncClient() as client:
        await client.get("https://example.org")
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()


@app.get("/good/cpu")
async def cheap_hash(data: bytes):
    return hashlib.sha256(data).hexdigest()
