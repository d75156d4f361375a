import multiprocessing
import socket
import sqlite3
import threading
import time

from fastapi import FastAPI
from filelock import FileLock

app = FastAPI()
SEMAPHORE = threading.Semaphore(4)
BOUNDED = threading.BoundedSemaphore(4)
CONDITION = threading.Condition()
PROCESS_LOCK = multiprocessing.Lock()
FILE_LOCK = FileLock("app.lock")


class Gate:
    def __enter__(self):
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        return None


@app.get("/semaphore")
async def semaphore():
    with SEMAPHORE:
        return 1


@app.get("/bounded")
async def bounded():
    with BOUNDED:
        return 1


@app.get("/condition")
async def condition():
    with CONDITION:
        return 1


@app.get("/process-lock")
async def process_lock():
    with PROCESS_LOCK:
        return 1


@app.get("/file-lock")
async def file_lock():
    with FILE_LOCK:
        return 1


@app.get("/file-lock-inline")
async def file_lock_inline():
    with FileLock("other.lock"):
        return 1


@app.get("/commit")
async def commit(conn: sqlite3.Connection):
    with conn:
        return 1


@app.get("/socket")
async def connect():
    with socket.create_connection(("db", 5432)):
        return 1


@app.get("/gate")
async def gate():
    with Gate():
        return 1


class Store:
    def __init__(self):
        self._lock = threading.RLock()

    def get(self):
        with self._lock:
            return 1


def guarded(lock: threading.Lock):
    with lock:
        return 2


STORE = Store()


@app.get("/store")
async def store():
    return STORE.get() + guarded(threading.Lock())
