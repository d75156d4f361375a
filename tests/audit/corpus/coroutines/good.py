import asyncio

ASYNC_LOCK = asyncio.Lock()


async def good_helper():
    await asyncio.sleep(1)


async def good_guarded():
    async with ASYNC_LOCK:
        return 1
