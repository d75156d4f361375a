"""Types of the C extension `loopscope.probe._speedups` (see `_speedups.c`)."""

from typing import Any

BUDGET_CHUNK: int

class StepHook:
    loop: Any
    __wrapped__: Any
    current_step: int
    def __init__(
        self,
        original: Any,
        recorder: Any,
        var: Any,
        handle_type: type,
        timer_type: type,
        long_ns: int,
    ) -> None: ...
    def __call__(self, handle: Any) -> None: ...

class SoonHook:
    loop: Any
    __wrapped__: Any
    def __init__(
        self,
        original: Any,
        recorder: Any,
        var: Any,
        handle_type: type,
        timer_type: type,
        stamp_limit: int,
    ) -> None: ...
    def __call__(self, loop: Any, callback: Any, args: Any, context: Any) -> Any: ...

class RequestWatch:
    request_id: str
    def __call__(self, message: Any) -> Any: ...
    def finish(self, scope: Any) -> None: ...

class RequestWatcher:
    def __init__(self, recorder: Any, var: Any, clock: Any, prefix: str) -> None: ...
    def begin(self, scope: Any, send: Any) -> RequestWatch | None: ...

LOG_CHUNK: int
