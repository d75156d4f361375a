"""Entry points: the functions FastAPI and Starlette call by themselves, and where they run them.

The rules (checked against FastAPI 0.165 / Starlette 1.10, see NOTES.md):

- routes, websocket routes, dependencies (`Depends`/`Security`, also in `Annotated` and in
  `dependencies=[...]`), exception handlers, background tasks and `HTTPEndpoint` methods: an
  `async def` is awaited on the event loop, a plain `def` is sent to the thread pool;
- a sync generator dependency runs in the thread pool too (its exit on a one-token limiter);
- a class used as a dependency is called through `__init__`, which is never a coroutine: pool;
  an *instance* used as a dependency (`Depends(Checker())`) is called through its class's
  `__call__`: on the loop when that is `async def`, in the pool when it is a plain `def`;
- middleware (`BaseHTTPMiddleware.dispatch`, `@app.middleware`, pure ASGI `__call__`), lifespan,
  and `on_event`/`add_event_handler` handlers run on the loop — the exception: Starlette calls a
  sync startup/shutdown handler directly, on the loop, not in the pool;
- `StreamingResponse` iterates an async generator on the loop and a sync one in the pool.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from loopscope.audit.index import Function, FunctionNode, Klass, Module, ProjectIndex, own_nodes
from loopscope.audit.model import Entry, EntryKind, RunsOn
from loopscope.audit.resolve import Resolver, dotted

HTTP_METHODS = ("get", "post", "put", "delete", "patch", "options", "head", "trace")
_ROUTE_DECORATORS = frozenset({*HTTP_METHODS, "api_route", "route"})
_WEBSOCKET_DECORATORS = frozenset({"websocket", "websocket_route"})
_ROUTE_CALLS = {"add_api_route": "route", "add_route": "route", "Route": "route",
                "APIRoute": "route", "add_api_websocket_route": "websocket",
                "add_websocket_route": "websocket", "WebSocketRoute": "websocket",
                "APIWebSocketRoute": "websocket"}  # fmt: skip
_ENDPOINT_METHODS = frozenset({*HTTP_METHODS})


@dataclass(eq=False, slots=True)
class EntryPoint:
    """An `Entry` with the project code it starts: its function and any decorator wrappers."""

    entry: Entry
    function: Function
    wrappers: list[Function] = field(default_factory=list)


def _scoped_nodes(index: ProjectIndex) -> Iterator[tuple[Module, Function | None, ast.AST]]:
    for module in index.modules.values():
        stack: list[ast.AST] = list(module.file.tree.body)
        while stack:
            node = stack.pop()
            yield module, None, node
            if not isinstance(node, FunctionNode | ast.Lambda):
                stack.extend(ast.iter_child_nodes(node))
    for function in index.functions:
        for node in own_nodes(function.node):
            yield function.module, function, node


def _last(expr: ast.expr) -> str:
    parts = dotted(expr)
    return parts[-1] if parts else ""


def _path_of(call: ast.Call) -> str | None:
    for arg in [*call.args[:1], *(k.value for k in call.keywords if k.arg == "path")]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _methods_of(call: ast.Call, default: str) -> str:
    for keyword in call.keywords:
        if keyword.arg == "methods" and isinstance(keyword.value, ast.List | ast.Tuple | ast.Set):
            names = [e.value for e in keyword.value.elts if isinstance(e, ast.Constant)]
            return ",".join(str(n).upper() for n in names) or default
    return default


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == keyword:
            return k.value
    return call.args[position] if len(call.args) > position else None


def _source_order(point: EntryPoint) -> tuple[str, int, str]:
    function = point.function
    return function.module.file.relpath, function.node.lineno, point.entry.kind


class EntryFinder:
    """Finds every entry point of a project (see the module docstring for the rules)."""

    def __init__(self, index: ProjectIndex, resolver: Resolver) -> None:
        self._index = index
        self._resolver = resolver
        self._found: dict[tuple[str, str, int], EntryPoint] = {}

    def find(self) -> list[EntryPoint]:
        """All entry points, in source order."""
        for module, scope, node in _scoped_nodes(self._index):
            if isinstance(node, FunctionNode):
                self._function(module, scope, node)
            elif isinstance(node, ast.ClassDef):
                self._class(module, node)
            elif isinstance(node, ast.Call):
                self._call(module, scope, node)
        return sorted(self._found.values(), key=_source_order)

    def _add(self, kind: EntryKind, name: str, function: Function, runs_on: RunsOn) -> EntryPoint:
        key = (kind, function.qualname, function.node.lineno)
        if key not in self._found:
            entry = Entry(kind, name, function.qualname, function.where, runs_on)
            self._found[key] = EntryPoint(entry, function)
        return self._found[key]

    def _functions(self, module: Module, scope: Function | None, expr: ast.expr) -> list[Function]:
        return [t for t in self._resolver.resolve(module, scope, expr) if isinstance(t, Function)]

    @staticmethod
    def _pool_unless_async(function: Function) -> RunsOn:
        return "event loop" if function.is_async else "thread pool"

    def _function(self, module: Module, scope: Function | None, node: FunctionNode) -> None:
        function = self._index.by_line.get((module.file.path, node.lineno))
        if not isinstance(function, Function):
            return
        roles: list[EntryPoint] = []
        wrappers: list[Function] = []
        for decorator in node.decorator_list:
            head = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = _last(head)
            if isinstance(decorator, ast.Call) and isinstance(head, ast.Attribute):
                path = _path_of(decorator)
                runs = self._pool_unless_async(function)
                if name in _ROUTE_DECORATORS and path is not None:
                    default = "GET" if name in ("api_route", "route") else name.upper()
                    label = f"{_methods_of(decorator, default)} {path}"
                    roles.append(self._add("route", label, function, runs))
                    continue
                if name in _WEBSOCKET_DECORATORS and path is not None:
                    roles.append(self._add("websocket", f"WS {path}", function, "event loop"))
                    continue
                if name == "middleware":
                    roles.append(self._add("middleware", node.name, function, "event loop"))
                    continue
                if name == "exception_handler":
                    roles.append(self._add("exception handler", node.name, function, runs))
                    continue
                if name == "on_event":
                    roles.append(self._add("event handler", node.name, function, "event loop"))
                    continue
            for target in self._functions(module, scope, head):
                inner = [f for f in self._index.functions if f.outer is target]
                wrappers += inner[:1]
        for role in roles:
            role.wrappers = wrappers
        self._dependencies_in_signature(module, scope, node)

    def _dependencies_in_signature(
        self, module: Module, scope: Function | None, node: FunctionNode
    ) -> None:
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        for param in params:
            if param.annotation is not None:
                for call in ast.walk(param.annotation):
                    if isinstance(call, ast.Call):
                        self._depends(module, scope, call, param.annotation)
        for default in defaults:
            for call in ast.walk(default):
                if isinstance(call, ast.Call):
                    self._depends(module, scope, call, None)

    def _depends(
        self, module: Module, scope: Function | None, call: ast.Call, annotation: ast.expr | None
    ) -> None:
        if _last(call.func) not in ("Depends", "Security"):
            return
        dependency = _argument(call, 0, "dependency")
        if dependency is None and isinstance(annotation, ast.Subscript):
            inner = annotation.slice
            dependency = inner.elts[0] if isinstance(inner, ast.Tuple) else None
        if dependency is None:
            return
        targets = list(self._resolver.resolve(module, scope, dependency))
        if not any(isinstance(t, Function | Klass) for t in targets):
            # An instance (`Depends(Checker())`, `Depends(checker)`): FastAPI calls its
            # `__call__`, awaited on the loop when it is `async def`, else in the pool.
            for cls in self._resolver.instances(module, scope, dependency):
                method = self._resolver.method(cls, "__call__") if isinstance(cls, Klass) else None
                if method is not None:
                    targets.append(method)
        for target in targets:
            if isinstance(target, Function):
                runs = self._pool_unless_async(target)
                if target.is_async and target.is_generator:
                    runs = "event loop"
                self._add("dependency", target.display, target, runs)
            elif isinstance(target, Klass) and "__init__" in target.methods:
                self._add("dependency", target.node.name, target.methods["__init__"], "thread pool")

    def _class(self, module: Module, node: ast.ClassDef) -> None:
        klass = self._index.by_line.get((module.file.path, node.lineno))
        if not isinstance(klass, Klass):
            return
        bases = {_last(b) for b in node.bases}
        if "BaseHTTPMiddleware" in bases and "dispatch" in klass.methods:
            self._add("middleware", klass.node.name, klass.methods["dispatch"], "event loop")
        call = klass.methods.get("__call__")
        if call is not None and call.is_async:
            names = [a.arg for a in call.node.args.args]
            if names[1:4] == ["scope", "receive", "send"]:
                self._add("middleware", klass.node.name, call, "event loop")
        if bases & {"HTTPEndpoint", "WebSocketEndpoint"}:
            for name, method in klass.methods.items():
                if name in _ENDPOINT_METHODS or name.startswith("on_"):
                    runs = self._pool_unless_async(method)
                    label = f"{name.upper()} {klass.node.name}"
                    self._add("route", label, method, runs)

    def _call(self, module: Module, scope: Function | None, call: ast.Call) -> None:
        name = _last(call.func)
        if name in ("Depends", "Security"):
            self._depends(module, scope, call, None)
        elif name in _ROUTE_CALLS:
            endpoint = _argument(call, 1, "endpoint")
            kind: EntryKind = "websocket" if _ROUTE_CALLS[name] == "websocket" else "route"
            path = _path_of(call) or "?"
            for target in self._refs(module, scope, endpoint):
                runs = self._pool_unless_async(target) if kind == "route" else "event loop"
                label = f"{_methods_of(call, 'GET')} {path}" if kind == "route" else f"WS {path}"
                self._add(kind, label, target, runs)
        elif name == "add_exception_handler":
            for target in self._refs(module, scope, _argument(call, 1, "handler")):
                self._add(
                    "exception handler", target.display, target, self._pool_unless_async(target)
                )
        elif name == "add_event_handler":
            for target in self._refs(module, scope, _argument(call, 1, "func")):
                self._add("event handler", target.display, target, "event loop")
        elif name in ("add_task", "BackgroundTask"):
            func = _argument(call, 0, "func")
            for target in self._refs(module, scope, func):
                self._add(
                    "background task", target.display, target, self._pool_unless_async(target)
                )
        elif name == "StreamingResponse":
            content = _argument(call, 0, "content")
            if isinstance(content, ast.Call):
                for target in self._refs(module, scope, content.func):
                    runs = self._pool_unless_async(target)
                    self._add("stream", target.display, target, runs)
        self._keywords(module, scope, call)

    def _keywords(self, module: Module, scope: Function | None, call: ast.Call) -> None:
        for keyword in call.keywords:
            if keyword.arg == "lifespan":
                for target in self._refs(module, scope, keyword.value):
                    self._add("lifespan", target.display, target, "event loop")
            elif keyword.arg in ("on_startup", "on_shutdown") and isinstance(
                keyword.value, ast.List | ast.Tuple
            ):
                for element in keyword.value.elts:
                    for target in self._refs(module, scope, element):
                        self._add("event handler", target.display, target, "event loop")
            elif keyword.arg == "exception_handlers" and isinstance(keyword.value, ast.Dict):
                for value in keyword.value.values:
                    for target in self._refs(module, scope, value):
                        runs = self._pool_unless_async(target)
                        self._add("exception handler", target.display, target, runs)

    def _refs(
        self, module: Module, scope: Function | None, expr: ast.expr | None
    ) -> list[Function]:
        return [] if expr is None else self._functions(module, scope, expr)
