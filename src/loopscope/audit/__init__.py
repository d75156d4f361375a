"""Static audit: which code FastAPI/Starlette run on the event loop, and what blocks it there.

Reads a project's sources (never imports or runs them), finds its entry points (routes,
dependencies, middleware, handlers, lifespan, background tasks) and where each runs, follows
calls through the project's own code with jedi's type inference, and reports every blocking call
reached on the loop with its shortest call chain and the fix. Results are plain data
(`AuditResult`), rendered as text, JSON or SARIF by `render` and `sarif`. Imports nothing of
probe/server/load.
"""

from __future__ import annotations

from loopscope.audit.config import AuditSettings, load_settings
from loopscope.audit.model import AuditResult, Entry, Finding, SourceProblem, Unresolved
from loopscope.audit.scan import audit

__all__ = [
    "AuditResult",
    "AuditSettings",
    "Entry",
    "Finding",
    "SourceProblem",
    "Unresolved",
    "audit",
    "load_settings",
]
