import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/good/health")
async def health_on_loop():
    return {"status": "ok"}


@app.get("/good/slow")
def slow_in_pool():
    time.sleep(1)
    return {"status": "ok"}
