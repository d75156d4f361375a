"""A reporting service laid out as real apps are: a router under a prefix, a storage layer that
blocks two calls below an async route, a CPU loop, offloading through `asyncio.to_thread`, an
executor of its own (`reports`) and aiosqlite, and a route that only awaits."""
