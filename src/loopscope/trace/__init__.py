"""The Trace: what happened to every request, on the loop and in the thread pool.

Produced by measurement (`loopscope.server` + `loopscope.load` + `loopscope.probe`) and, later,
by simulation; read by `loopscope.report`. This package imports nothing else of loopscope's except
`loopscope.errors`, so the probe can use it inside the observed server.
"""

from loopscope.trace.io import (
    dump_trace,
    load_trace,
    load_traces,
    trace_from_dict,
    trace_to_dict,
)
from loopscope.trace.model import (
    STATES,
    TRACE_VERSION,
    LoopBlock,
    PoolCall,
    PoolSample,
    Request,
    Run,
    Segment,
    State,
    Trace,
)

__all__ = [
    "STATES",
    "TRACE_VERSION",
    "LoopBlock",
    "PoolCall",
    "PoolSample",
    "Request",
    "Run",
    "Segment",
    "State",
    "Trace",
    "dump_trace",
    "load_trace",
    "load_traces",
    "trace_from_dict",
    "trace_to_dict",
]
