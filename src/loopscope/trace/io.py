"""Trace ⇄ JSON and `ServerRecord` ⇄ JSON, validated by pydantic.

Loading validates the whole file against the model's dataclasses with pydantic's `TypeAdapter`
in strict mode: a corrupt or foreign file is reported with the path of the first bad values
(`requests[3].segments[0].state: Input should be 'queued', ...`), never with a traceback, and an
unknown key is an error. The `Literal` values (states, sources, block kinds) are written once, in
`loopscope.trace.model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from loopscope.errors import TraceError, TraceFormatError
from loopscope.trace.model import READABLE_VERSIONS, TRACE_VERSION, Trace
from loopscope.trace.record import RECORD_VERSION, ServerRecord

T = TypeVar("T")

_SHOWN_ERRORS = 3


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """The JSON-ready form of `trace` (the file format, `"version": 2`)."""
    data = dataclasses.asdict(trace)
    ordered: dict[str, Any] = {"version": trace.version}
    ordered.update((key, value) for key, value in data.items() if key != "version")
    return ordered


def dump_trace(trace: Trace, path: str | Path) -> Path:
    """Write `trace` to `path` as JSON and return the path."""
    return _write(path, trace_to_dict(trace), "the trace")


def dump_record(record: ServerRecord, path: str | Path) -> Path:
    """Write a probe's `record` to `path` as JSON, atomically (a reader never sees half a file:
    it is written beside the target and renamed), and return the path."""
    return _write(path, dataclasses.asdict(record), "the probe's record")


def _write(path: str | Path, data: Any, what: str) -> Path:
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        partial.write_text(json.dumps(data, separators=(",", ":")))
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise TraceError(f"Cannot write {what} to {target}: {exc.strerror}.") from exc
    return target


def read_json(path: str | Path) -> Any:
    """Read a JSON file, turning I/O and syntax errors into `TraceError`s that name the file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"Cannot read {source}: {exc.strerror}.") from exc
    except UnicodeDecodeError as exc:
        raise TraceFormatError(
            f"{source} is not a loopscope trace: it is not UTF-8 text (byte {exc.start})."
        ) from exc
    if not text.strip():
        raise TraceFormatError(f"{source} is empty: not a loopscope trace.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # An error at the very end: the writer stopped part-way (a full disk, a kill).
        truncated = exc.pos >= len(text.rstrip())
        cut = " It ends part-way: the file looks truncated." if truncated else ""
        raise TraceFormatError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).{cut}"
        ) from exc


def load_trace(path: str | Path) -> Trace:
    """Read one trace file written by `dump_trace`."""
    data = read_json(path)
    try:
        return trace_from_dict(data)
    except TraceFormatError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None


# The headline numbers `loopscope demo --json` writes beside each run's trace keys.
_DEMO_RUN_KEYS = ("mode", "io_ms", "users", "threads", "makespan_s")
_DEMO_REQUEST_KEYS = ("latency_s",)


def load_traces(path: str | Path) -> list[Trace]:
    """Every trace in a file: one trace, or the runs of a `loopscope demo --json` record."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("runs"), list) and "run" not in data:
        items = [(f"runs[{i}]", _without_demo_keys(item)) for i, item in enumerate(data["runs"])]
    else:
        items = [("", data)]
    traces = []
    for where, item in items:
        try:
            traces.append(trace_from_dict(item))
        except TraceFormatError as exc:
            prefix = f"{path}: {where}: " if where else f"{path}: "
            raise TraceFormatError(f"{prefix}{exc}") from None
    if not traces:
        raise TraceFormatError(f"{path}: the file holds no runs")
    return traces


def _without_demo_keys(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = {k: v for k, v in item.items() if k not in _DEMO_RUN_KEYS}
    if isinstance(out.get("requests"), list):
        out["requests"] = [
            {k: v for k, v in r.items() if k not in _DEMO_REQUEST_KEYS}
            if isinstance(r, dict)
            else r
            for r in out["requests"]
        ]
    return out


def trace_from_dict(data: Any) -> Trace:
    """Build a `Trace` from its dict form, validating every field (`TraceFormatError` if not)."""
    if not isinstance(data, dict) or "run" not in data or "requests" not in data:
        raise TraceFormatError("not a loopscope trace (no 'run' and 'requests' keys)")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise TraceFormatError(
            f"trace version {version!r} is not supported (this loopscope reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); re-record it with this version"
        )
    trace = _validate(Trace, {**data, "version": TRACE_VERSION})
    return trace


def record_from_dict(data: Any) -> ServerRecord:
    """Build a probe's `ServerRecord` from its dict form, validating every field."""
    if not isinstance(data, Mapping) or "pid" not in data or "requests" not in data:
        raise TraceFormatError("not a loopscope probe record (no 'pid' and 'requests' keys)")
    if data.get("version") != RECORD_VERSION:
        raise TraceFormatError(
            f"probe record version {data.get('version')!r} is not supported (this loopscope "
            f"reads version {RECORD_VERSION})"
        )
    return _validate(ServerRecord, data)


def load_record(path: str | Path) -> ServerRecord:
    """Read one probe record written by `dump_record`."""
    data = read_json(path)
    try:
        return record_from_dict(data)
    except TraceFormatError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None


_ADAPTERS: dict[type, Any] = {}


def _adapter(cls: type) -> Any:
    # pydantic is imported here, not at module level: the probe imports `loopscope.trace` inside
    # the observed server and only writes records, which needs no validation.
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def _validate(cls: type[T], data: Any) -> T:
    from pydantic import ValidationError

    try:
        # Strict mode from JSON text: a string is not a number, a float is not an int, a `true`
        # is not a count (strict validation of Python dicts would demand dataclass instances).
        result: T = _adapter(cls).validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        problems = [
            f"{_location(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)[:_SHOWN_ERRORS]
        ]
        more = exc.error_count() - len(problems)
        if more > 0:
            problems.append(f"and {more} more")
        raise TraceFormatError("; ".join(problems)) from None
    return result


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
