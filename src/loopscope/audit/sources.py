"""Find and parse the project's Python files; a file that cannot be read is reported, not fatal.

The audit never imports the code it reads: files are parsed with `ast` here, and the inference
engine (`resolve`) reads them as text too.
"""

from __future__ import annotations

import ast
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from loopscope.audit.model import SourceProblem

MAX_FILE_BYTES = 2_000_000
"""Files larger than this are generated code, not a project's own: reported and skipped."""

MAX_NESTING = 100
"""Syntax trees deeper than this are generated code (hand-written code stays under 30 levels):
reported and skipped, since the recursive steps after parsing (jedi, `ast.unparse`) would
overflow Python's stack on them."""

_SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".tox",
     ".ruff_cache", ".pytest_cache", "build", "dist", ".eggs"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One parsed source file: its module name, paths, text lines and syntax tree."""

    module: str
    path: Path
    relpath: str
    lines: tuple[str, ...]
    source: str
    tree: ast.Module


def nesting(tree: ast.AST) -> int:
    """How many levels deep `tree` goes (walked without recursion, so any depth is safe)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def discover(root: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Every `.py` file under `root` (or `root` itself), sorted, skipping tool and venv folders
    and paths matching an `exclude` glob (relative to `root`)."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    seen: set[str] = set()  # real folders walked: a symlink back up the tree is walked once
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                if not any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
                    found.append(path)
    return sorted(found)


def package_base(root: Path) -> Path:
    """The folder module names are relative to: `root`, or above it while `root` is inside a
    package (auditing `src/app/api` still names its modules `app.api.x`)."""
    # absolute, not resolved: a symlinked folder keeps the name it has under `root`
    base = root.absolute() if root.is_dir() else root.absolute().parent
    while (base / "__init__.py").is_file() and base.parent != base:
        base = base.parent
    return base


def module_name(root: Path, path: Path) -> str:
    """The dotted module name of `path`, relative to `root` (or to `root/src` in a src layout)."""
    rel = path.absolute().relative_to(package_base(root))
    if rel.parts and rel.parts[0] == "src" and len(rel.parts) > 1:
        rel = rel.relative_to("src")
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or path.stem


def parse_all(root: Path, paths: list[Path]) -> tuple[list[ParsedFile], list[SourceProblem]]:
    """Parse `paths`; the ones that cannot be read or parsed become `SourceProblem`s."""
    base = root if root.is_dir() else root.parent
    parsed: list[ParsedFile] = []
    problems: list[SourceProblem] = []
    for path in paths:
        rel = path.relative_to(base).as_posix()
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                reason = f"skipped: {size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit"
                problems.append(SourceProblem(rel, reason))
                continue
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(SourceProblem(rel, f"unreadable: {exc}"))
            continue
        try:
            tree = ast.parse(source, filename=rel)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            at = f" at line {line}" if line else ""
            msg = getattr(exc, "msg", str(exc))
            problems.append(SourceProblem(rel, f"syntax error{at}: {msg}"))
            continue
        except (RecursionError, MemoryError):
            problems.append(SourceProblem(rel, "skipped: too deeply nested for Python's parser"))
            continue
        levels = nesting(tree)
        if levels > MAX_NESTING:
            reason = f"skipped: nested {levels} levels deep, over the {MAX_NESTING}-level limit"
            problems.append(SourceProblem(rel, reason))
            continue
        lines = tuple(source.splitlines())
        parsed.append(ParsedFile(module_name(root, path), path, rel, lines, source, tree))
    return parsed, problems
