"""The project's own code, indexed: modules, functions, classes, and what each name is bound to.

Built once from the parsed files; `resolve` looks names up here before it asks the inference
engine, and the reachability walk (`reach`) moves from `Function` to `Function`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from loopscope.audit.sources import ParsedFile

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(eq=False, slots=True)
class Module:
    """One project module: its file, what its top-level names are bound to, its definitions."""

    file: ParsedFile
    imports: dict[str, str] = field(default_factory=dict)
    defs: dict[str, Function | Klass] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The dotted module name."""
        return self.file.module


@dataclass(eq=False, slots=True)
class Klass:
    """A class defined in the project, with its methods by name."""

    qualname: str
    node: ast.ClassDef
    module: Module
    methods: dict[str, Function] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Function:
    """A function or method defined in the project.

    `locals` are the names it binds itself (parameters, assignments, imports); `outer` is the
    enclosing function for closures; `owner` the class of a method.
    """

    qualname: str
    display: str
    node: FunctionNode
    module: Module
    owner: Klass | None
    outer: Function | None
    locals: frozenset[str]
    imports: dict[str, str] = field(default_factory=dict)

    @property
    def is_async(self) -> bool:
        """Whether it is an `async def` (a coroutine or async generator function)."""
        return isinstance(self.node, ast.AsyncFunctionDef)

    @property
    def is_generator(self) -> bool:
        """Whether its own body yields (calling it runs nothing until it is iterated)."""
        return any(isinstance(n, ast.Yield | ast.YieldFrom) for n in own_nodes(self.node))

    @property
    def where(self) -> str:
        """`path:line` of its `def`."""
        return f"{self.module.file.relpath}:{self.node.lineno}"


def own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, not descending into nested functions, lambdas or classes
    (their bodies do not run when the function runs)."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        found.append(child)
        if not isinstance(child, _SCOPES):
            stack.extend(ast.iter_child_nodes(child))
    return found


def _bound_names(node: FunctionNode) -> frozenset[str]:
    args = node.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for child in own_nodes(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in child.names}
        elif isinstance(child, FunctionNode | ast.ClassDef):
            names.add(child.name)
        elif isinstance(child, ast.Global | ast.Nonlocal):
            names -= set(child.names)
    return frozenset(names)


@dataclass(slots=True)
class ProjectIndex:
    """Every project module, function and class, found by qualified name or by `def` line."""

    modules: dict[str, Module] = field(default_factory=dict)
    by_qualname: dict[str, Function | Klass] = field(default_factory=dict)
    by_line: dict[tuple[Path, int], Function | Klass] = field(default_factory=dict)
    functions: list[Function] = field(default_factory=list)

    def lookup(self, qualname: str, depth: int = 0) -> Function | Klass | None:
        """The project definition a qualified name stands for, following re-exports."""
        if qualname in self.by_qualname:
            return self.by_qualname[qualname]
        head, _, last = qualname.rpartition(".")
        module = self.modules.get(head)
        if module is not None and last in module.imports and depth < 8:
            return self.lookup(module.imports[last], depth + 1)
        return None


def _import_target(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[: max(keep, 0)])
    return ".".join(p for p in (base, node.module or "") if p)


def _local_imports(module: Module, node: FunctionNode) -> dict[str, str]:
    """Imports inside a function body (lazy imports), by the name they bind."""
    found: dict[str, str] = {}
    is_package = module.file.path.name == "__init__.py"
    for child in own_nodes(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                top = alias.name.split(".")[0]
                found[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(child, ast.ImportFrom):
            source = _import_target(module.name, child, is_package)
            for alias in child.names:
                found[alias.asname or alias.name] = f"{source}.{alias.name}"
    return found


def _module_bindings(module: Module) -> None:
    file = module.file
    is_package = file.path.name == "__init__.py"
    for stmt in file.tree.body:
        for node in [stmt, *own_nodes(stmt)] if isinstance(stmt, ast.If | ast.Try) else [stmt]:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        module.imports[top] = top
            elif isinstance(node, ast.ImportFrom):
                source = _import_target(file.module, node, is_package)
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    module.assigned |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def build_index(files: list[ParsedFile]) -> ProjectIndex:
    """Index the definitions and top-level bindings of `files`."""
    index = ProjectIndex()
    for file in files:
        module = Module(file)
        index.modules[file.module] = module
        _module_bindings(module)
        _index_scope(index, module, file.tree.body, file.module, None, None)
    return index


def _index_scope(
    index: ProjectIndex,
    module: Module,
    body: list[ast.stmt],
    prefix: str,
    owner: Klass | None,
    outer: Function | None,
) -> None:
    nodes: list[ast.AST] = []
    for stmt in body:
        nodes.append(stmt)
        if not isinstance(stmt, _SCOPES):
            nodes.extend(own_nodes(stmt))
    for node in nodes:
        if isinstance(node, FunctionNode):
            display = f"{owner.node.name}.{node.name}" if owner else node.name
            function = Function(
                f"{prefix}.{node.name}", display, node, module, owner, outer, _bound_names(node)
            )
            index.functions.append(function)
            index.by_qualname.setdefault(function.qualname, function)
            index.by_line[(module.file.path, node.lineno)] = function
            if owner is not None:
                owner.methods.setdefault(node.name, function)
            elif outer is None and prefix == module.name:
                module.defs.setdefault(node.name, function)
            function.imports = _local_imports(module, node)
            _index_scope(index, module, node.body, function.qualname, None, function)
        elif isinstance(node, ast.ClassDef):
            klass = Klass(f"{prefix}.{node.name}", node, module)
            index.by_qualname.setdefault(klass.qualname, klass)
            index.by_line[(module.file.path, node.lineno)] = klass
            if outer is None and owner is None:
                module.defs.setdefault(node.name, klass)
            _index_scope(index, module, node.body, klass.qualname, klass, outer)
