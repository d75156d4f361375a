"""The probe's most numerous records, packed into `bytearray`s: no Python object per record.

A busy server makes a few loop steps and one request record per request. Stored as tuples of
boxed ints and strings, they cost a server under `make bench` about 5% of its throughput: every
record meant several small objects kept alive among the app's short-lived ones, which spread the
app's working memory, and the garbage collector ran to look at them. Here a record is a few
int64s (and its strings as UTF-8 bytes) appended to one growing buffer, in the layout that
`_speedups.c` writes with `memcpy`; iterating a log gives the tuples back.

A request is referred to by its `serial` (1, 2, ... in order of arrival, see
`Recorder.add_request`); a step's `ref` is its request's serial, a negative number for an id seen
only in steps (`Recorder.late`), or 0 for none.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

STEP = struct.Struct("=5q")
"""A packed loop step: `start_ns, end_ns, cpu_end_ns, ref, ready_ns`, int64s in native byte
order."""

FINISHED = struct.Struct("=7q")
"""A finished request's numbers: `start_ns, first_step_ns, end_ns, status, last_step_ns, serial,
texts_at`; `texts_at` is where its four texts start in `FinishedLog.texts`."""

TEXT_LENGTH = struct.Struct("=i")
"""The int32 before each text: its UTF-8 length, or `NO_TEXT`."""

NO_STATUS = -(2**63)
"""The packed status of a response whose status was missing or not an int64."""

NO_TEXT = -1
"""The packed length of a text that was not a string (or not encodable)."""

PackedStep = tuple[int, int, int, int, int]
"""A step as `StepLog` gives it back: `(start_ns, end_ns, cpu_end_ns, ref, ready_ns)`."""


class StepLog:
    """The loop's steps, `STEP.size` bytes each."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()  # appended to in place by the hooks; never replaced

    def append(self, start: int, end: int, cpu_end: int, ref: int, ready: int) -> None:
        """Add one step."""
        self.data += STEP.pack(start, end, cpu_end, ref, ready)

    def clear(self) -> None:
        """Forget every step."""
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data) // STEP.size

    def __iter__(self) -> Iterator[PackedStep]:
        # A copy: the loop thread may append while another thread reads.
        return STEP.iter_unpack(bytes(self.data))


def pack_text(value: Any) -> bytes:
    """`value` as `FinishedLog.texts` stores it: length, then UTF-8 bytes."""
    if isinstance(value, str):
        try:
            encoded = value.encode()
        except UnicodeEncodeError:  # a lone surrogate
            return TEXT_LENGTH.pack(NO_TEXT)
        return TEXT_LENGTH.pack(len(encoded)) + encoded
    return TEXT_LENGTH.pack(NO_TEXT)


def unpack_texts(data: bytes | bytearray, at: int, count: int) -> list[str | None]:
    """The `count` texts stored from byte `at` of `data`."""
    texts: list[str | None] = []
    for _ in range(count):
        (length,) = TEXT_LENGTH.unpack_from(data, at)
        at += TEXT_LENGTH.size
        if length < 0:
            texts.append(None)
        else:
            texts.append(data[at : at + length].decode(errors="replace"))
            at += length
    return texts


class FinishedLog:
    """The finished requests: their numbers (`FINISHED`) in `numbers`, and their id, method,
    path and route template in `texts`. The texts go first and the numbers say where they are,
    so a request whose storing failed halfway leaves at most texts that nothing refers to."""

    __slots__ = ("numbers", "texts")

    def __init__(self) -> None:
        self.numbers = bytearray()
        self.texts = bytearray()

    def append(
        self,
        serial: int,
        texts: tuple[Any, Any, Any, Any],
        times: tuple[int, int, int, int],
        status: Any,
    ) -> None:
        """Add a request: `texts` is `(request_id, method, path, route)`, `times` is
        `(start_ns, first_step_ns, end_ns, last_step_ns)`."""
        if type(status) is not int or not NO_STATUS < status < 2**63:
            status = NO_STATUS
        start, first_step, end, last_step = times
        packed = FINISHED.pack(start, first_step, end, status, last_step, serial, len(self.texts))
        self.texts += b"".join(map(pack_text, texts))
        self.numbers += packed

    def __len__(self) -> int:
        return len(self.numbers) // FINISHED.size

    def __iter__(self) -> Iterator[tuple[int, list[str | None], tuple[int, ...], int | None]]:
        """Each request as `(serial, [request_id, method, path, route], (start_ns,
        first_step_ns, end_ns, last_step_ns), status)`, in the order they finished."""
        # The numbers first: the texts they point at were stored before them.
        numbers = bytes(self.numbers)
        texts = bytes(self.texts)
        for start, first, end, status, last, serial, at in FINISHED.iter_unpack(numbers):
            yield (
                serial,
                unpack_texts(texts, at, 4),
                (start, first, end, last),
                None if status == NO_STATUS else status,
            )
