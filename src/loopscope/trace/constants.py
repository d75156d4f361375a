"""The numbers and names that the client, the probe, the CLI and the report must agree on.

Each is defined here once; the probe's C extension receives the request header from
`loopscope.probe` rather than spelling it again.
"""

from __future__ import annotations

REQUEST_HEADER = "x-loopscope-request"
"""The HTTP header that carries a request's id from the load driver to the probe."""

DEFAULT_BLOCK_MS = 20.0
"""A loop step longer than this is a loop block (ms): long enough not to blame ordinary steps,
short enough to catch a blocking call that users feel."""

ANYIO_DEFAULT_TOKENS = 40
"""anyio's default thread-pool limiter (`CapacityLimiter(40)`), which FastAPI and Starlette use
for every `def` endpoint, dependency and `run_in_threadpool` call."""

AIOSQLITE_EXECUTOR = "aiosqlite"
"""The executor name of aiosqlite's threads (one per connection) in `PoolCall.executor`."""
