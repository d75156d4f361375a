"""Types of the C extension `loopscope.probe._speedups` (see `_speedups.c`)."""

from typing import Any

BUDGET_CHUNK: int

class StepHook:
    loop: Any
    __wrapped__: Any
    current_step: int
    foreign_step: int
    def __init__(
        self,
        original: Any,
        report: Any,
        recorder: Any,
        var: Any,
        handle_type: type,
        timer_type: type,
        long_ns: int,
        stamp_limit: int,
        inline: bool = False,
    ) -> None: ...
    def __call__(self, handle: Any) -> None: ...
    def forget_stamps(self) -> None: ...
    def adopt_running_step(self) -> None: ...

class SoonHook:
    loop: Any
    __wrapped__: Any
    def __init__(self, original: Any, steps: StepHook, inline: bool = False) -> None: ...
    def __call__(self, loop: Any, callback: Any, args: Any, context: Any) -> Any: ...

class RequestWatch:
    request_id: str
    serial: int
    row: tuple[Any, Any, int, int, int]
    def __call__(self, message: Any) -> Any: ...
    def finish(self, scope: Any) -> None: ...

class RequestWatcher:
    def __init__(
        self, recorder: Any, var: Any, clock: Any, header: bytes, route_of: Any
    ) -> None: ...
    def begin(self, scope: Any, send: Any) -> RequestWatch | None: ...

NO_TEXT: int
TICKS_KEPT: int

class StallGate:
    def __init__(
        self, hook: StepHook, interval_ns: int, sample_after_ns: int, cpu_clock_id: int | None
    ) -> None: ...
    def wait(self) -> int | None: ...
    def stop(self) -> None: ...
    def ticks(self) -> list[tuple[int, int]]: ...
