"""Trace ⇄ JSON: `dump_trace`, `load_trace`, and the dict forms they are built on.

Loading validates as it goes, so a corrupt or foreign file is reported with the path of the first
bad value (`requests[3].segments[0].state: expected one of ...`), never with a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from loopscope.errors import TraceError, TraceFormatError
from loopscope.trace.model import (
    STATES,
    TRACE_VERSION,
    LoopBlock,
    PoolCall,
    PoolSample,
    Request,
    Run,
    Segment,
    Trace,
)

T = TypeVar("T")

_INT = (int,)
_NUM = (int, float)


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """The JSON-ready form of `trace` (the file format, `"version": 1`)."""
    data = dataclasses.asdict(trace)
    ordered: dict[str, Any] = {"version": trace.version}
    ordered.update((key, value) for key, value in data.items() if key != "version")
    return ordered


def dump_trace(trace: Trace, path: str | Path) -> Path:
    """Write `trace` to `path` as JSON and return the path."""
    target = Path(path)
    try:
        target.write_text(json.dumps(trace_to_dict(trace), separators=(",", ":")))
    except OSError as exc:
        raise TraceError(f"Cannot write the trace to {target}: {exc.strerror}.") from exc
    return target


def read_json(path: str | Path) -> Any:
    """Read a JSON file, turning I/O and syntax errors into `TraceError`s that name the file."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise TraceError(f"Cannot read {source}: {exc.strerror}.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc


def load_trace(path: str | Path) -> Trace:
    """Read one trace file written by `dump_trace`."""
    data = read_json(path)
    try:
        return trace_from_dict(data)
    except TraceFormatError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None


def load_traces(path: str | Path) -> list[Trace]:
    """Every trace in a file: one trace, or the runs of a `loopscope demo --json` record."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("runs"), list) and "run" not in data:
        items = [(f"runs[{i}]", item) for i, item in enumerate(data["runs"])]
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


def trace_from_dict(data: Any) -> Trace:
    """Build a `Trace` from its dict form, validating every field."""
    if not isinstance(data, dict) or "run" not in data or "requests" not in data:
        raise TraceFormatError("not a loopscope trace (no 'run' and 'requests' keys)")
    version = data.get("version")
    if version != TRACE_VERSION:
        raise TraceFormatError(
            f"trace version {version!r} is not supported (this loopscope reads version "
            f"{TRACE_VERSION}); re-record it with this version"
        )
    return Trace(
        run=build_record(Run, data["run"], "run"),
        requests=[
            _build_request(item, f"requests[{i}]")
            for i, item in enumerate(_items(data, "requests", None))
        ],
        loop_blocks=build_records(LoopBlock, data, "loop_blocks"),
        pool=build_records(PoolCall, data, "pool"),
        pool_samples=build_records(PoolSample, data, "pool_samples"),
        lanes=build_records(Segment, data, "lanes"),
    )


def build_records(
    cls: type[T], data: Mapping[str, Any], key: str, where: str | None = None
) -> list[T]:
    """Validate and build the list of `cls` records under `data[key]` (missing means empty).

    `where` is the path of `data` itself, so errors name the full path of a bad value.
    """
    path = f"{where}.{key}" if where else key
    return [
        build_record(cls, item, f"{path}[{i}]") for i, item in enumerate(_items(data, key, where))
    ]


def _items(data: Mapping[str, Any], key: str, where: str | None) -> list[Any]:
    items = data.get(key, [])
    if not isinstance(items, list):
        path = f"{where}.{key}" if where else key
        raise TraceFormatError(f"{path}: expected a list, got {type(items).__name__}")
    return items


def _build_request(item: Any, where: str) -> Request:
    if not isinstance(item, dict):
        raise TraceFormatError(f"{where}: expected an object")
    fields = {k: v for k, v in item.items() if k != "segments"}
    request = build_record(Request, fields, where)
    request.segments = build_records(Segment, item, "segments", where)
    return request


# Which JSON types each annotation accepts; the model only uses these.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "int": _INT,
    "float": _NUM,
    "str": (str,),
    "bool": (bool,),
    "list[str]": (list,),
    "list[Segment]": (list,),
    "dict[str, int]": (dict,),
}


def build_record(cls: type[T], item: Any, where: str) -> T:
    """Validate `item` against dataclass `cls` and build it; `where` names it in errors."""
    if not isinstance(item, Mapping):
        raise TraceFormatError(f"{where}: expected an object, got {type(item).__name__}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        if f.name not in item:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TraceFormatError(f"{where}.{f.name}: missing")
            continue
        value = item[f.name]
        _check(value, str(f.type), f"{where}.{f.name}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _check(value: Any, annotation: str, where: str) -> None:
    options = [part.strip() for part in annotation.split("|")]
    if value is None:
        if "None" in options:
            return
        raise TraceFormatError(f"{where}: must not be null")
    if annotation == "State":
        if value not in STATES:
            raise TraceFormatError(f"{where}: expected one of {', '.join(STATES)}, got {value!r}")
        return
    if annotation in ("Source", "BlockKind"):
        allowed = ("measured", "simulated") if annotation == "Source" else ("code", "gc")
        if value not in allowed:
            raise TraceFormatError(f"{where}: expected one of {', '.join(allowed)}, got {value!r}")
        return
    for option in options:
        accepted = _ACCEPTS.get(option)
        if accepted is None:
            continue
        # bool is an int in Python, but a JSON `true` where a number belongs is a corrupt file.
        if isinstance(value, bool) and option != "bool":
            continue
        if isinstance(value, accepted):
            return
    raise TraceFormatError(f"{where}: expected {annotation}, got {type(value).__name__}")
