"""Audit tests share one cached audit per folder: auditing is pure, and jedi's first inference
of a project is the slow part."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.audit import AuditResult, audit

AuditOf = Callable[[Path], AuditResult]


@pytest.fixture(scope="session")
def audit_of() -> AuditOf:
    """`audit_of(path)`: the audit of `path`, computed once per test session."""
    cache: dict[Path, AuditResult] = {}

    def audited(path: Path) -> AuditResult:
        if path not in cache:
            cache[path] = audit(path)
        return cache[path]

    return audited
