import time

from fastapi import FastAPI

app = FastAPI()


def work():
    time.sleep(1)


@app.get("/direct")
async def direct():
    work()
