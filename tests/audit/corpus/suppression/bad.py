import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/wrong-code")
async def wrong_code():
    time.sleep(1)  # loopscope: ignore[LS103]
