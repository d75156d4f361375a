import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/ignored")
async def ignored():
    time.sleep(1)  # loopscope: ignore


@app.get("/ignored-code")
async def ignored_code():
    time.sleep(1)  # loopscope: ignore[LS101]
