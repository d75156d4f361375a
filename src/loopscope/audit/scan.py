"""One audit, end to end: parse → index → entry points → walk → findings."""

from __future__ import annotations

from pathlib import Path

from loopscope.audit.catalogue import Catalogue
from loopscope.audit.config import AuditSettings
from loopscope.audit.entries import EntryFinder, EntryPoint
from loopscope.audit.findings import finding_for, unneeded_hop
from loopscope.audit.index import build_index
from loopscope.audit.model import SEVERITY_RANK, AuditResult, Finding, Unresolved
from loopscope.audit.reach import CallGraph
from loopscope.audit.resolve import Resolver
from loopscope.audit.sources import discover, parse_all
from loopscope.errors import UsageError


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
    resolver = Resolver(index, root)
    catalogue = Catalogue(settings.blocking_io, settings.blocking_cpu, settings.allow)
    graph = CallGraph(resolver, catalogue)
    points = EntryFinder(index, resolver).find()
    findings: list[Finding] = []
    unresolved: dict[str, Unresolved] = {}
    seen: set[tuple[str, str, str]] = set()
    for point in points:
        starts = [point.function, *point.wrappers]
        reached, visited = graph.walk(starts, settings.max_depth)
        missed = [u for f in visited for u in graph.sites(f).unresolved]
        if point.entry.runs_on == "event loop":
            for item in reached:
                finding = finding_for(point, item)
                key = (finding.entry, finding.where, finding.call) if finding else None
                if finding is not None and key is not None and key not in seen:
                    seen.add(key)
                    findings.append(finding)
            unresolved.update((u.where + u.text, u) for u in missed)
        elif point.entry.kind == "route" and not reached and not missed:
            hint = unneeded_hop(point)
            if hint is not None:
                findings.append(hint)
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.entry, f.where))
    return AuditResult(
        root=str(root),
        entries=[p.entry for p in points],
        findings=findings,
        unresolved=sorted(unresolved.values(), key=lambda u: u.where),
        problems=problems,
        files=len(files),
    )


__all__ = ["EntryPoint", "audit"]
