import threading
import time
from typing import BinaryIO

LOCK = threading.RLock()


async def helper():
    time.sleep(1)


async def guarded():
    with LOCK:
        return 1


async def save(upload: BinaryIO):
    upload.write(b"data")
