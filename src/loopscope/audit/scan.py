"""One audit, end to end: parse → index → entry points → walk → findings."""

from __future__ import annotations

from pathlib import Path

from loopscope.audit.catalogue import Catalogue
from loopscope.audit.config import AuditSettings
from loopscope.audit.entries import EntryFinder, EntryPoint
from loopscope.audit.findings import finding_for, unneeded_hop
from loopscope.audit.index import build_index
from loopscope.audit.model import SEVERITY_RANK, AuditResult, Entry, Finding, Unresolved
from loopscope.audit.reach import LOOP_CALLBACKS, CallGraph
from loopscope.audit.resolve import Resolver
from loopscope.audit.sources import discover, parse_all
from loopscope.errors import UsageError


def _place(where: str) -> tuple[str, int]:
    """`path:line` as a sort key: line 9 before line 10."""
    path, _, line = where.rpartition(":")
    return path, int(line)


def audit(root: Path, settings: AuditSettings | None = None) -> AuditResult:
    """Audit the Python sources under `root` without importing or running them.

    Raises `UsageError` when `root` does not exist or holds no Python file.
    """
    settings = settings or AuditSettings()
    if not root.exists():
        raise UsageError(f"{root} does not exist. Pass a project directory or a Python file.")
    paths = discover(root, settings.exclude)
    if not paths:
        raise UsageError(f"{root} holds no Python file to audit.")
    files, problems = parse_all(root, paths)
    index = build_index(files)
    catalogue = Catalogue(
        settings.blocking_io, settings.blocking_cpu, settings.allow, settings.blocking_with
    )
    resolver = Resolver(index, root, catalogue.method_names | frozenset(LOOP_CALLBACKS))
    graph = CallGraph(resolver, catalogue)
    points = EntryFinder(index, resolver).find()
    findings: list[Finding] = []
    unresolved: dict[str, Unresolved] = {}
    seen: set[tuple[str, str]] = set()  # one finding per entry and line
    for point in points:
        starts = [point.function, *point.wrappers]
        reached, visited = graph.walk(starts, settings.max_depth)
        missed = [u for f in visited for u in graph.sites(f).unresolved]
        if point.entry.runs_on == "event loop":
            for item in reached:
                finding = finding_for(point, item)
                key = (finding.entry, finding.where) if finding else None
                if finding is not None and key is not None and key not in seen:
                    seen.add(key)
                    findings.append(finding)
            unresolved.update((u.where + u.text, u) for u in missed)
        elif point.entry.kind == "route" and not reached and not missed:
            hint = unneeded_hop(point)
            if hint is not None:
                findings.append(hint)
    # Every `async def` runs on the loop, whoever awaits it (another library, a task): a
    # coroutine no entry point reaches is a root of its own, reported where nothing else did.
    reported = {f.where for f in findings}
    roots = {id(f) for p in points for f in (p.function, *p.wrappers)}
    for function in index.functions:
        if not function.is_async or id(function) in roots:
            continue
        name = f"async def {function.display}"
        entry = Entry("coroutine", name, function.qualname, function.where, "event loop")
        point = EntryPoint(entry, function)
        reached, visited = graph.walk([function], settings.max_depth)
        for item in reached:
            finding = finding_for(point, item)
            if finding is not None and finding.where not in reported:
                reported.add(finding.where)
                findings.append(finding)
        for u in (u for f in visited for u in graph.sites(f).unresolved):
            unresolved[u.where + u.text] = u
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.entry, *_place(f.where)))
    return AuditResult(
        root=str(root),
        entries=[p.entry for p in points],
        findings=findings,
        unresolved=sorted(unresolved.values(), key=lambda u: _place(u.where)),
        problems=problems,
        files=len(files),
    )


__all__ = ["EntryPoint", "audit"]
