"""The audit's finding codes as rules: a stable name and description for each code.

A finding's message names the call it is about; a rule says what every finding with its code
has in common. SARIF consumers (GitHub code scanning) show the rule's descriptions and help on
each alert, so they must not depend on which finding happened to come first.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT


@dataclass(frozen=True, slots=True)
class Rule:
    """One finding code: a PascalCase `name`, a one-line `short` and a `full` description."""

    code: str
    name: str
    short: str
    full: str

    @property
    def fix(self) -> str:
        """The fix for every finding with this code, in general terms (a finding names its own
        alternative and entry point)."""
        if self.code.startswith("LS3"):
            return "make the route an `async def` so it skips the thread pool"
        if self.code.startswith("LS2"):
            return f"CPU-bound: {FIX_CPU} (or `await run_in_threadpool(...)` for short work)"
        return (
            f"{FIX_IO_WAIT}: await the async equivalent, wrap the call in "
            "`await run_in_threadpool(...)`, or make the entry point a plain `def` so FastAPI "
            "runs it in the thread pool"
        )


_LOOP = (
    "The event loop runs every coroutine of the process on one thread: while this call waits, "
    "no other request makes progress."
)

RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule("LS101", "BlockingSleep", "A synchronous sleep on the event loop", _LOOP),
        Rule("LS102", "BlockingHttp", "A synchronous HTTP request on the event loop", _LOOP),
        Rule("LS103", "BlockingDatabase", "A synchronous database call on the event loop", _LOOP),
        Rule("LS104", "BlockingFileIo", "Synchronous file I/O on the event loop", _LOOP),
        Rule("LS105", "BlockingProcess", "A process started or awaited on the event loop", _LOOP),
        Rule("LS106", "BlockingSocket", "A synchronous socket call on the event loop", _LOOP),
        Rule("LS107", "BlockingInput", "Reading standard input on the event loop", _LOOP),
        Rule(
            "LS108",
            "BlockingLockWait",
            "A wait on a thread lock, event, queue or future on the event loop",
            _LOOP,
        ),
        Rule(
            "LS109",
            "BlockingConfigured",
            "A call listed as blocking in pyproject.toml, on the event loop",
            _LOOP,
        ),
        Rule(
            "LS201",
            "CpuBoundOnLoop",
            "A CPU-bound call (password hashing) on the event loop",
            "A CPU-bound call holds the event loop for its whole run: every other request "
            "waits until it returns.",
        ),
        Rule(
            "LS202",
            "CpuConfigured",
            "A call listed as CPU-bound in pyproject.toml, on the event loop",
            "A CPU-bound call holds the event loop for its whole run: every other request "
            "waits until it returns.",
        ),
        Rule(
            "LS301",
            "UnneededThreadHop",
            "A plain `def` route that does no blocking work",
            "FastAPI runs a plain `def` route in the thread pool: each request waits for a "
            "pool token and hops to a worker thread and back, for nothing when the route never "
            "blocks.",
        ),
    )
}
"""Every code the audit emits → its rule."""
