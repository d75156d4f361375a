"""Follow calls from each entry point through the project's own code to blocking calls.

Breadth first, so the first path found to a blocking call is a shortest chain. A call is an
edge when it runs its target's body on the caller's thread: project functions, methods,
constructors (`__init__`), and callbacks handed to `loop.call_soon` (they run on the loop).
Offloading cuts the chain by construction: `run_in_threadpool(f)` only *names* `f`, so `f`'s body
is never an edge. A generator handed to `StreamingResponse` is not an edge either: Starlette
iterates it later, as an entry point of its own (`stream`, on the loop or in the pool).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass

from loopscope.audit.catalogue import Catalogue, Sink, normalise
from loopscope.audit.index import Function, Klass, own_nodes
from loopscope.audit.model import Unresolved
from loopscope.audit.resolve import Resolver

LOOP_CALLBACKS = ("call_soon", "call_soon_threadsafe", "call_later", "call_at")
"""Loop methods whose callback argument runs later on the loop itself."""

_STREAMING = frozenset({"StreamingResponse"})


@dataclass(frozen=True, slots=True)
class Edge:
    """A call site in `caller` (at `line`) whose target runs on the caller's thread."""

    line: int
    callee: Function


@dataclass(frozen=True, slots=True)
class SinkCall:
    """A call site in a function that is itself blocking."""

    line: int
    qualname: str
    sink: Sink


@dataclass(frozen=True, slots=True)
class CallSites:
    """What one function calls, resolved once and shared by every entry that reaches it."""

    edges: tuple[Edge, ...]
    sinks: tuple[SinkCall, ...]
    unresolved: tuple[Unresolved, ...]


@dataclass(frozen=True, slots=True)
class Reached:
    """A blocking call reached from an entry: the path of (line, function) steps to it."""

    start: Function
    path: tuple[tuple[Function, int], ...]
    callees: tuple[Function, ...]
    call: SinkCall

    @property
    def caller(self) -> Function:
        """The function that makes the blocking call."""
        return self.callees[-1] if self.callees else self.start


def _callback_position(name: str) -> int:
    return 1 if name in ("call_later", "call_at") else 0


class CallGraph:
    """Lazily resolved call sites of project functions, and walks over them."""

    def __init__(self, resolver: Resolver, catalogue: Catalogue) -> None:
        self._resolver = resolver
        self._catalogue = catalogue
        self._sites: dict[Function, CallSites] = {}

    def sites(self, function: Function) -> CallSites:
        """The resolved call sites of `function`'s own body."""
        if function not in self._sites:
            self._sites[function] = self._resolve(function)
        return self._sites[function]

    def _resolve(self, function: Function) -> CallSites:
        edges: list[Edge] = []
        sinks: list[SinkCall] = []
        unresolved: list[Unresolved] = []
        module = function.module
        streamed = {
            id(node.args[0])
            for node in own_nodes(function.node)
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            in _STREAMING
        }  # fmt: skip
        calls = [n for n in own_nodes(function.node) if isinstance(n, ast.Call)]
        # Inner calls first (`open(p)` before `open(p).read()`): the first blocking call of a
        # line is the one reported.
        for call in sorted(calls, key=lambda c: (c.lineno, c.end_col_offset or 0)):
            targets = self._resolver.resolve(module, function, call.func)
            if not targets:
                where = f"{module.file.relpath}:{call.lineno}"
                unresolved.append(Unresolved(where, function.display, ast.unparse(call.func)))
                continue
            for target in targets:
                if isinstance(target, Function):
                    if id(call) not in streamed:
                        edges.append(Edge(call.lineno, target))
                elif isinstance(target, Klass):
                    for init in ("__init__", "__post_init__"):
                        if init in target.methods:
                            edges.append(Edge(call.lineno, target.methods[init]))
                else:
                    name = normalise(target)
                    sink = self._catalogue.sink(name)
                    if sink is not None and not any(s.line == call.lineno for s in sinks):
                        sinks.append(SinkCall(call.lineno, name, sink))
                    method = name.rsplit(".", 1)[-1]
                    if method in LOOP_CALLBACKS and call.args:
                        position = _callback_position(method)
                        if len(call.args) > position:
                            for callback in self._resolver.resolve(
                                module, function, call.args[position]
                            ):
                                if isinstance(callback, Function):
                                    edges.append(Edge(call.lineno, callback))
        with_edges, with_sinks = self._with_blocks(function)
        edges += with_edges
        sinks += with_sinks
        return CallSites(tuple(edges), tuple(sinks), tuple(unresolved))

    def _with_blocks(self, function: Function) -> tuple[list[Edge], list[SinkCall]]:
        """`with x:` runs `x`'s `__enter__` and `__exit__` with no call written: a project
        class's are edges; a library class's are blocking when the catalogue says so (a thread
        or file lock acquires, a DB connection commits)."""
        edges: list[Edge] = []
        found: list[SinkCall] = []
        for node in own_nodes(function.node):
            if not isinstance(node, ast.With):
                continue
            for item in node.items:
                expr = item.context_expr
                for cls in self._resolver.instances(function.module, function, expr):
                    if isinstance(cls, Klass):
                        for dunder in ("__enter__", "__exit__"):
                            method = self._resolver.method(cls, dunder)
                            if method is not None:
                                edges.append(Edge(node.lineno, method))
                        continue
                    if not isinstance(cls, str):
                        continue
                    blocking = self._catalogue.with_sink(cls)
                    if blocking is not None:
                        found.append(SinkCall(node.lineno, *blocking))
                        break
        return edges, found

    def walk(self, starts: list[Function], max_depth: int) -> tuple[list[Reached], set[Function]]:
        """Every blocking call reachable from `starts` within `max_depth` calls, each with a
        shortest path, and the set of functions visited."""
        parent: dict[Function, tuple[Function, int] | None] = {s: None for s in starts}
        depth = {s: 0 for s in starts}
        queue = deque(starts)
        reached: list[Reached] = []
        while queue:
            function = queue.popleft()
            sites = self.sites(function)
            for sink_call in sites.sinks:
                reached.append(self._reached(parent, function, sink_call))
            if depth[function] >= max_depth:
                continue
            for edge in sites.edges:
                if edge.callee not in parent:
                    parent[edge.callee] = (function, edge.line)
                    depth[edge.callee] = depth[function] + 1
                    queue.append(edge.callee)
        return reached, set(parent)

    @staticmethod
    def _reached(
        parent: dict[Function, tuple[Function, int] | None], function: Function, call: SinkCall
    ) -> Reached:
        steps: list[tuple[Function, int]] = []
        callees: list[Function] = []
        current: Function = function
        link = parent[current]
        while link is not None:
            caller, line = link
            steps.append((caller, line))
            callees.append(current)
            current = caller
            link = parent[current]
        return Reached(current, tuple(reversed(steps)), tuple(reversed(callees)), call)
