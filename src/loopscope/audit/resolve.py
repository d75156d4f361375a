"""What a call or a reference points to: a project function or class, or a library callable.

Two stages, cheapest first. A name bound by an import or a top-level `def`/`class` and not
rebound in the enclosing functions is looked up in the index (`from time import sleep as nap`
→ `time.sleep`), which is exact and free. Everything else — receivers (`self.store.get()`,
`POOL.submit(f).result()`, `conn.execute()` on what `sqlite3.connect` returned) — goes to jedi,
which infers types from the project's code, the installed packages and typeshed's stubs. When jedi
gives up on `param.method()`, the parameter's annotation names the type (a library such as
sqlalchemy need not be installed for `session: Session` to be known).
"""

from __future__ import annotations

import ast
import builtins
import os
import sys
from pathlib import Path

import jedi

from loopscope.audit.index import Function, Klass, Module, ProjectIndex, own_nodes

Target = Function | Klass | str
"""A project function, a project class (constructed), or a library callable's qualified name."""

_BUILTINS = frozenset(dir(builtins))
UNTRACKED = "<untracked>"
"""Prefix of a method call not inferred: no project function and no blocking call has its
name, so whatever its receiver, it is neither followed nor reported."""
_CALLABLE_TYPES = frozenset({"function", "class"})


def dotted(expr: ast.expr) -> list[str] | None:
    """`a.b.c` as `["a", "b", "c"]`; `None` when the root is not a plain name."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return parts[::-1]


def _annotation_name(annotation: ast.expr | None) -> list[str] | None:
    """The type named by an annotation, looking through `Annotated[T, ...]` and `T | None`."""
    while annotation is not None:
        if isinstance(annotation, ast.Subscript):
            head = dotted(annotation.value)
            inner = annotation.slice
            if head and head[-1] in ("Annotated", "Optional") and isinstance(inner, ast.Tuple):
                annotation = inner.elts[0]
            elif head and head[-1] == "Optional":
                annotation = inner
            else:
                return head
        elif isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            right = annotation.right
            none = isinstance(right, ast.Constant) and right.value is None
            annotation = annotation.left if none else right
        else:
            return dotted(annotation)
    return None


def _parameters(function: Function) -> dict[str, ast.arg]:
    args = function.node.args
    return {a.arg: a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}


def _is_class(target: Target) -> bool:
    """Whether `target` names a class: a project class, or a library name in CapWords (a
    library callable's name is all we know of it when its package is not installed)."""
    if isinstance(target, Klass):
        return True
    return isinstance(target, str) and target.rsplit(".", 1)[-1][:1].isupper()


def _is_self(function: Function, name: str) -> bool:
    """Whether `name` is the first parameter of a plain method (`self`)."""
    args = function.node.args
    first = [*args.posonlyargs, *args.args][:1]
    decorators = {(dotted(d) or [""])[-1] for d in function.node.decorator_list}
    return bool(first) and first[0].arg == name and not decorators & {"staticmethod", "classmethod"}


class Resolver:
    """Resolves call targets and references inside one project, caching jedi's per-file state."""

    def __init__(self, index: ProjectIndex, root: Path, watched: frozenset[str]) -> None:
        self._index = index
        # A method call is worth inferring only if it may land in the project or be blocking.
        # (`module.function()` never gets here: imported modules are resolved from the index.)
        self._watched = watched | {f.node.name for f in index.functions if f.owner is not None}
        self._receivers: dict[tuple[str, str, str], list[Target]] = {}
        base = root if root.is_dir() else root.parent
        paths = [str(base), str(base / "src"), *sys.path]
        # Searching every caller to guess an unannotated parameter's type is what makes jedi
        # slow on large trees; such calls are listed as unresolved instead.
        jedi.settings.dynamic_params = False
        jedi.settings.dynamic_params_for_other_modules = False
        jedi.settings.dynamic_array_additions = False
        self._project = jedi.Project(base, sys_path=paths, smart_sys_path=False)
        self._environment = jedi.InterpreterEnvironment()
        self._scripts: dict[Path, jedi.Script] = {}
        self._state: object | None = None
        self._nested = {(f.outer.qualname, f.node.name): f for f in index.functions if f.outer}
        self._project_roots = frozenset(name.split(".")[0] for name in index.modules)
        self._by_real = {
            (os.path.realpath(path), line): target for (path, line), target in index.by_line.items()
        }

    def resolve(self, module: Module, scope: Function | None, expr: ast.expr) -> list[Target]:
        """What `expr` (a callee or a function reference) stands for; `[]` when unknown."""
        static = self._static(module, scope, expr)
        if static is not None:
            return [static]
        if isinstance(expr, ast.Attribute):
            if expr.attr not in self._watched:
                return [f"{UNTRACKED}.{expr.attr}"]
            key = (scope.qualname if scope else module.name, ast.unparse(expr.value), expr.attr)
            if key not in self._receivers:
                self._receivers[key] = self._inferred(module, scope, expr)
            return self._receivers[key]
        return self._inferred(module, scope, expr)

    def _inferred(self, module: Module, scope: Function | None, expr: ast.expr) -> list[Target]:
        found = self._jedi(module, expr)
        if found:
            return found
        annotated = self._annotated(module, scope, expr)
        return [annotated] if annotated is not None else []

    def _bound_locally(self, scope: Function | None, name: str) -> Function | None:
        while scope is not None:
            if name in scope.locals:
                return scope
            scope = scope.outer
        return None

    def _static(self, module: Module, scope: Function | None, expr: ast.expr) -> Target | None:
        parts = dotted(expr)
        if parts is None:
            return None
        binder = self._bound_locally(scope, parts[0])
        if binder is None:
            return self._static_parts(module, parts)
        nested = self._nested.get((binder.qualname, parts[0]))
        if nested is not None and len(parts) == 1:
            return nested
        if len(parts) == 2 and binder is scope and _is_self(scope, parts[0]):
            method = self.method(scope.owner, parts[1]) if scope.owner else None
            if method is not None:
                return method
        if parts[0] in binder.imports:
            return self._qualified(".".join([binder.imports[parts[0]], *parts[1:]]))
        return None

    def method(self, klass: Klass, name: str, depth: int = 0) -> Function | None:
        """`name` looked up on a project class and its project bases (first found wins)."""
        if name in klass.methods:
            return klass.methods[name]
        for base in klass.node.bases:
            parts = dotted(base)
            found = self._static_parts(klass.module, parts) if parts else None
            if isinstance(found, Klass) and depth < 16:
                method = self.method(found, name, depth + 1)
                if method is not None:
                    return method
        return None

    def _qualified(self, qualname: str) -> Target | None:
        project = self._index.lookup(qualname)
        if project is not None:
            return project
        if qualname.split(".")[0] in self._project_roots:
            return None  # a project object that is not a def (an instance): ask jedi
        return qualname

    def _static_parts(self, module: Module, parts: list[str]) -> Target | None:
        root, rest = parts[0], parts[1:]
        if root in module.assigned:
            return None
        if root in module.defs:
            found = module.defs[root]
            if not rest:
                return found
            if isinstance(found, Klass) and len(rest) == 1:
                return found.methods.get(rest[0])
            return None
        if root in module.imports:
            return self._qualified(".".join([module.imports[root], *rest]))
        if root in _BUILTINS and not rest:
            return f"builtins.{root}"
        return None

    def _script(self, module: Module) -> jedi.Script:
        path = module.file.path
        if path not in self._scripts:
            script = jedi.Script(
                module.file.source, path=path, project=self._project, environment=self._environment
            )
            # One inference state for every file, so what jedi learnt about a library
            # (pydantic, typeshed's builtins) while typing one file serves all others; a new
            # Script otherwise starts from nothing. jedi has no public API for this.
            if self._state is None:
                self._state = getattr(script, "_inference_state", None)
            elif hasattr(script, "_inference_state"):
                script._inference_state = self._state
            self._scripts[path] = script
        # jedi gives up on a syntax node inferred 300 times in one state's life: a limit meant
        # for one query, so it is reset before each.
        counts = getattr(self._state, "inferred_element_counts", None)
        if isinstance(counts, dict):
            counts.clear()
        return self._scripts[path]

    @staticmethod
    def _position(module: Module, expr: ast.expr) -> tuple[int, int] | None:
        """jedi's (line, column) of the name `expr` ends with; columns count characters."""
        if isinstance(expr, ast.Attribute) and expr.end_lineno and expr.end_col_offset:
            line, end = expr.end_lineno, expr.end_col_offset
            text = module.file.lines[line - 1].encode()
            return line, len(text[:end].decode(errors="replace")) - len(expr.attr)
        if isinstance(expr, ast.Name):
            text = module.file.lines[expr.lineno - 1].encode()
            return expr.lineno, len(text[: expr.col_offset].decode(errors="replace"))
        return None

    def _jedi(self, module: Module, expr: ast.expr) -> list[Target]:
        position = self._position(module, expr)
        if position is None:
            return []
        line, column = position
        script = self._script(module)
        try:
            names = script.goto(line, column, follow_imports=True)
            if not any(n.type in _CALLABLE_TYPES for n in names):
                names = script.infer(line, column)
        except Exception:
            return []
        targets: list[Target] = []
        for name in names:
            if name.type not in _CALLABLE_TYPES:
                continue
            path = name.module_path
            project = None
            if path is not None and name.line is not None:
                project = self._by_real.get((os.path.realpath(path), name.line))
            if project is not None:
                targets.append(project)
            elif name.full_name:
                targets.append(name.full_name)
        return targets

    def instances(self, module: Module, scope: Function | None, expr: ast.expr) -> list[Target]:
        """The classes of the values `expr` may hold: project classes, or library classes by
        qualified name (a module's lock, a parameter's annotation, `with FileLock(p):`)."""
        if isinstance(expr, ast.Call):
            return [t for t in self.resolve(module, scope, expr.func) if _is_class(t)]
        found: list[Target] = []
        position = self._position(module, expr)
        if position is not None:
            try:
                names = self._script(module).infer(*position)
            except Exception:  # an engine failure on one expression must not stop the audit
                names = []
            for name in names:
                if name.type != "instance":
                    continue
                path = name.module_path
                project = None
                if path is not None and name.line is not None:
                    project = self._by_real.get((os.path.realpath(path), name.line))
                if isinstance(project, Klass):
                    found.append(project)
                elif name.full_name:
                    found.append(name.full_name)
        if found or not isinstance(expr, ast.Name):
            return found
        # jedi cannot type a value of a library that is not installed: read the binding.
        binder = self._bound_locally(scope, expr.id)
        if binder is not None:
            param = _parameters(binder).get(expr.id)
            type_parts = _annotation_name(param.annotation if param else None)
            if type_parts:
                target = self._static_parts(binder.module, type_parts)
                return [target] if target is not None and _is_class(target) else []
            body = own_nodes(binder.node)
        else:
            body = list(module.file.tree.body)
        for node in body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)
            ):
                return self.instances(module, binder, node.value)
        return []

    def _annotated(self, module: Module, scope: Function | None, expr: ast.expr) -> Target | None:
        parts = dotted(expr)
        if parts is None or len(parts) < 2:
            return None
        owner = self._bound_locally(scope, parts[0])
        if owner is None:
            return None
        param = _parameters(owner).get(parts[0])
        type_parts = _annotation_name(param.annotation if param else None)
        if not type_parts:
            return None
        type_target = self._static_parts(owner.module, type_parts)
        if isinstance(type_target, Klass) and len(parts) == 2:
            return type_target.methods.get(parts[1])
        if isinstance(type_target, str):
            return ".".join([type_target, *parts[1:]])
        return None
