"""The fix for each kind of loop block, in one place: `trace` verdicts and `audit` findings.

A measured block and a statically found blocking call must never advise differently, so both
take their remedy from these phrases.
"""

from __future__ import annotations

FIX_CPU = "offload to a process pool"
"""CPU-bound work holds the GIL: a thread would still slow the loop, a process does not."""

FIX_IO_WAIT = "I/O wait: await an async driver or offload it"
"""The thread waits on I/O: an async driver frees the loop, and so does a worker thread."""

FIX_UNKNOWN = "offload it or use an async API"
"""Blocking of unknown kind (no CPU/wait split): either remedy applies."""
